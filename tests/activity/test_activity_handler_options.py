"""A decorated handler brings its options to the activity worker, `callback-kit invoke` and `callback-kit activity`."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time
from typing import Any

import pydantic

import callback_kit as ck
from callback_kit.activity import ActivityWorker
from callback_kit.cli import EXIT_OK, main
from callback_kit.exceptions import ERROR_INVALID_PAYLOAD
from callback_kit.invoke import invoke
from callback_kit.testing import FakeStepFunctions

ARN = "arn:aws:states:us-east-1:123456789012:activity:documents"
INPUT = {"document": {"name": "q3-report.pdf", "pages": 12}, "requestedBy": "alice@example.com"}


class Document(pydantic.BaseModel):
    name: str
    pages: int


@ck.callback_handler(model=Document, payload_path="document", heartbeat_interval=0)
def summarise(document: Document) -> dict[str, Any]:
    return {"name": document.name, "long": document.pages > 10}


@ck.callback_handler(payload_path="document", heartbeat_interval=0)
def summarise_dict(document: dict[str, Any]) -> dict[str, Any]:
    return {"name": document["name"], "long": document["pages"] > 10}


@ck.callback_handler(model=Document, heartbeat_interval=0)
def summarise_without_path(document: Document) -> dict[str, Any]:
    return {"name": document.name}


def plain_summary(document: dict[str, Any]) -> dict[str, Any]:
    return {"name": document["name"]}


def run_task(fn: Any) -> tuple[Any, ...]:
    fake = FakeStepFunctions()
    token = fake.open_task()
    ActivityWorker(ARN, fn, client=fake).run_one({"taskToken": token, "input": json.dumps(INPUT)})
    outcome = fake.outcome(token)
    assert outcome is not None
    return outcome


def test_the_worker_applies_a_decorated_handlers_payload_path_and_model() -> None:
    # GIVEN handlers decorated with payload_path (with and without a model)
    # WHEN the activity worker runs a task whose input holds the payload under that path
    with_model, without_model = run_task(summarise), run_task(summarise_dict)

    # THEN each function got the object at the path
    assert with_model == ("success", {"name": "q3-report.pdf", "long": True})
    assert without_model == ("success", {"name": "q3-report.pdf", "long": True})


def test_invalid_payload_names_the_top_level_keys_and_no_value() -> None:
    # GIVEN a handler whose model describes an object one level down, and no payload_path
    # WHEN the worker runs the task
    outcome = run_task(summarise_without_path)

    # THEN InvalidPayload names the keys the payload has (pointing at payload_path), never a value
    assert outcome[:2] == ("failure", ERROR_INVALID_PAYLOAD)
    message = outcome[2]["errorMessage"]
    assert "top-level keys: 'document', 'requestedBy'" in message
    assert "alice" not in json.dumps(outcome[2])
    assert "q3-report" not in json.dumps(outcome[2])


def test_invoke_on_an_activity_event_applies_the_handlers_payload_path() -> None:
    # GIVEN a GetActivityTask response, as `callback-kit invoke --event` reads it
    event = {"taskToken": "token-1", "input": json.dumps(INPUT)}
    out = io.StringIO()

    # WHEN it is invoked with the decorated handler
    code = invoke(summarise, event, out=out)

    # THEN the function got the document and its success would be sent
    assert code == 0, out.getvalue()
    assert "SendTaskSuccess" in out.getvalue()
    assert '"long": true' in out.getvalue()


def test_the_activity_command_takes_a_payload_path() -> None:
    # GIVEN a queued task whose payload is under "document", and a plain function
    fake = FakeStepFunctions(activity_poll_seconds=0.02)
    token = fake.add_activity_task(ARN, INPUT)

    def terminate_when_answered() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and fake.outcome(token) is None:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    # WHEN `callback-kit activity --payload-path document` runs until SIGTERM
    threading.Thread(target=terminate_when_answered, daemon=True).start()
    argv = ["activity", ARN, f"{__name__}:plain_summary", "--payload-path", "document", "--heartbeat-interval", "0"]
    code = main([*argv, "--shutdown-grace-seconds", "1"], client=fake, stderr=io.StringIO())

    # THEN the function got the document
    assert code == EXIT_OK
    assert fake.outcome(token) == ("success", {"name": "q3-report.pdf"})
