"""The activity worker's metrics: Source=activity, flushed at most once a minute and when it stops."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from callback_kit.activity import METRICS_FLUSH_SECONDS, ActivityWorker, PollBackoff
from callback_kit.testing import FakeStepFunctions
from tests.clock import wait_until
from tests.observe.conftest import emf_documents, total

ARN = "arn:aws:states:us-east-1:123456789012:activity:ageCheck"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def check_age(person: dict[str, int]) -> dict[str, bool]:
    if person["age"] < 0:
        raise ValueError("negative age")
    return {"adult": person["age"] >= 18}


def test_flushes_once_a_minute_and_on_stop(metrics: Metrics, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a worker with metrics and a clock the test moves
    fake = FakeStepFunctions(activity_poll_seconds=0.02)
    clock = Clock()
    worker = ActivityWorker(
        ARN,
        check_age,
        client=fake,
        metrics=metrics,
        heartbeat_interval=0,
        shutdown_grace_seconds=2.0,
        backoff=PollBackoff(min_poll_seconds=0.0, rand=lambda: 1.0),
        tick=0.005,
        clock=clock,
    )
    good, bad = fake.add_activity_task(ARN, {"age": 30}), fake.add_activity_task(ARN, {"age": -1})
    worker.start()
    wait_until(lambda: fake.outcome(good) is not None and fake.outcome(bad) is not None)
    wait_until(lambda: worker.stats.succeeded + worker.stats.failed == 2)
    # WHEN less than a minute passes, nothing is written; when a minute has passed, one document is
    time.sleep(0.05)
    assert emf_documents(capsys.readouterr().out) == []
    clock.now += METRICS_FLUSH_SECONDS
    first: list[dict[str, Any]] = []

    def flushed() -> bool:
        first.extend(emf_documents(capsys.readouterr().out))
        return bool(first)

    wait_until(flushed)
    # AND a task after it is written when the worker stops
    later = fake.add_activity_task(ARN, {"age": 12})
    wait_until(lambda: fake.outcome(later) is not None)
    wait_until(lambda: worker.stats.succeeded == 2)
    worker.stop()
    assert worker.wait(5)
    last = emf_documents(capsys.readouterr().out)
    # THEN the first document counts the first two tasks, the last one the third, all from Source=activity
    [document] = first
    assert (total(document, "TaskSucceeded"), total(document, "TaskFailed"), document["Source"]) == (1, 1, "activity")
    assert len(document["TaskDuration"]) == 2
    [final] = last
    assert (total(final, "TaskSucceeded"), total(final, "TaskFailed")) == (1, 0)
