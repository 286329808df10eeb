"""Every task's end is one INFO line with its status, error name and token fingerprint: the logs tell why it failed."""

from __future__ import annotations

import json
import logging
from typing import Any

import pydantic

import callback_kit as ck
from callback_kit.activity import ActivityWorker
from callback_kit.exceptions import ERROR_INVALID_PAYLOAD
from callback_kit.logs import fingerprint
from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, sqs_event
from tests.reliability.harness import captured_logs

ARN = "arn:aws:states:us-east-1:123456789012:activity:documents"


class Document(pydantic.BaseModel):
    name: str
    size_mb: float


def check(document: Document) -> dict[str, str]:
    if document.size_mb > 10:
        raise ck.TaskFailed("the document is over 10 MB", error="Document.TooLarge")
    return {"name": document.name}


def ends(records: list[logging.LogRecord], message: str) -> dict[str, dict[str, Any]]:
    """The end lines logged, by token fingerprint, each as its fields."""
    found: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.getMessage() == message:
            fp = r.__dict__["token_fp"]
            assert fp not in found, f"two end lines for {fp}"
            assert r.levelno == logging.INFO
            found[fp] = {k: r.__dict__.get(k) for k in ("status", "error", "source", "record_id")}
    return found


def test_each_record_of_a_batch_ends_with_one_info_line() -> None:
    # GIVEN a batch with a success, a business failure, a payload the model refuses, and a record without token
    sfn = FakeStepFunctions()
    ok, large, invalid = sfn.open_task(), sfn.open_task(), sfn.open_task()
    event = sqs_event(
        {"TaskToken": ok, "name": "a.pdf", "size_mb": 1},
        {"TaskToken": large, "name": "b.pdf", "size_mb": 12},
        {"TaskToken": invalid, "title": "c.pdf"},
        {"name": "d.pdf", "size_mb": 1},
    )
    handler = ck.callback_handler(model=Document, client=sfn, heartbeat_interval=0)(check)

    # WHEN it runs with the logs at INFO
    with captured_logs(level=logging.INFO) as logs:
        handler(event, FakeLambdaContext())

    # THEN each record has exactly one end line saying how it ended and under which error name; no raw token
    lines = ends(logs.records, "task ended")
    ids = [r["messageId"] for r in event["Records"]]
    expected = [
        (ok, "succeeded", None),
        (large, "failed", "Document.TooLarge"),
        (invalid, "failed", ERROR_INVALID_PAYLOAD),
        (None, "no_token", None),
    ]
    assert lines == {
        fingerprint(token): {"status": status, "error": error, "source": "sqs", "record_id": record_id}
        for (token, status, error), record_id in zip(expected, ids, strict=True)
    }
    raised = [r for r in logs.records if r.getMessage() == "user function raised"]
    assert [r.__dict__["error"] for r in raised] == ["Document.TooLarge"]
    for token in (ok, large, invalid):
        assert not any(token in line for line in logs.lines)


def test_the_activity_workers_answered_line_names_the_error() -> None:
    # GIVEN an activity task the function fails with a business error
    fake = FakeStepFunctions()
    token = fake.open_task()
    worker = ActivityWorker(ARN, check, model=Document, client=fake, heartbeat_interval=0)

    # WHEN the worker runs it with the logs at INFO
    with captured_logs(level=logging.INFO) as logs:
        worker.run_one({"taskToken": token, "input": json.dumps({"name": "b.pdf", "size_mb": 12})})

    # THEN its one answered line names the status and the error sent
    lines = ends(logs.records, "activity task answered")
    assert lines == {
        fingerprint(token): {"status": "failed", "error": "Document.TooLarge", "source": "activity", "record_id": None}
    }
    assert not any(token in line for line in logs.lines)
