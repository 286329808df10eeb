"""Every request the activity worker sends is valid against botocore's real stepfunctions service model."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from callback_kit.activity import POLL_READ_TIMEOUT, ActivityWorker, PollBackoff, poll_client
from callback_kit.task.heartbeat import HeartbeatScheduler

ARN = "arn:aws:states:us-east-1:123456789012:activity:ageCheck"
TOKEN_OK = "AAAAKgAAAAIAAAAAAAAAAQ" + "x" * 600
TOKEN_BAD = "AAAAKgAAAAIAAAAAAAAAAg" + "y" * 600
TOKEN_LATE = "AAAAKgAAAAIAAAAAAAAAAw" + "z" * 600


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.session.Session(region_name="us-east-1").client("stepfunctions")


def test_polls_heartbeats_and_completions_match_the_service_model(client: Any) -> None:
    # GIVEN a real botocore client whose every request is checked against the model, in the order expected
    now = [0.0]
    scheduler = HeartbeatScheduler(clock=lambda: now[0], start_thread=False, jitter=0.0)
    worker: ActivityWorker

    def work(payload: dict[str, str]) -> dict[str, str]:
        now[0] += 10.0
        scheduler.run_pending()  # one heartbeat, sent from here so that the order is fixed
        if payload["kind"] == "late":
            worker.stop()
        if payload["kind"] != "ok":
            raise ValueError(payload["kind"])
        return {"checked": payload["kind"]}

    worker = ActivityWorker(
        ARN, work, client=client, worker_name="host-1:42", heartbeat_interval=5, scheduler=scheduler,
        backoff=PollBackoff(min_poll_seconds=0.0), tick=0.005,
    )  # fmt: skip
    poll = {"activityArn": ARN, "workerName": "host-1:42"}
    with Stubber(client) as stub:
        stub.add_response("get_activity_task", {}, poll)  # no work: an empty answer
        for token, kind in ((TOKEN_OK, "ok"), (TOKEN_BAD, "bad"), (TOKEN_LATE, "late")):
            stub.add_response("get_activity_task", {"taskToken": token, "input": f'{{"kind": "{kind}"}}'}, poll)
            stub.add_response("send_task_heartbeat", {}, {"taskToken": token})
            if kind == "ok":
                stub.add_response("send_task_success", {}, {"taskToken": token, "output": '{"checked":"ok"}'})
            elif kind == "bad":
                stub.add_response("send_task_failure", {}, {"taskToken": token, "error": "ValueError", "cause": ANY})
            else:  # the task was closed meanwhile: Step Functions says TaskTimedOut, which ends it quietly
                stub.add_client_error("send_task_failure", "TaskTimedOut", expected_params=None)
        # WHEN the worker polls until the last task stops it
        worker.start()
        assert worker.wait(10)
        # THEN every stubbed request was made, with parameters the model accepts
        stub.assert_no_pending_responses()
    stats = worker.stats
    assert (stats.succeeded, stats.failed, stats.closed, stats.heartbeats, stats.poll_errors) == (1, 1, 1, 3, 0)


def test_the_default_poll_client_outlasts_the_long_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an AWS environment
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    # WHEN the worker's own poll client is built
    config: Any = poll_client(50).meta.config
    # THEN its read timeout is above the 60 s hold, botocore does not retry, and every slot has a connection
    assert config.read_timeout == POLL_READ_TIMEOUT > 65
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.max_pool_connections > 50
