"""The SAM app's approval step on the in-memory Step Functions: the notifier hands off, the API completes.

Both handlers use callback-kit's default client, as deployed; the tests put the fake in its place.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, direct_event
from tests.apphandlers import load_handler

ROOT = Path(__file__).resolve().parents[2]
API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod"
#: A token with the characters real ones have (``+``, ``/``, ``=``), which the links must URL-encode.
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAc+9Hd/Token=="


def load(module: str) -> ModuleType:
    return load_handler(module, "unit")


class FakeSns:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[dict[str, Any]] = []
        self.fail = fail

    def publish(self, **params: Any) -> dict[str, Any]:
        if self.fail:
            raise ConnectionError("SNS unreachable")
        self.published.append(params)
        return {"MessageId": "m-1"}


@pytest.fixture
def sfn(monkeypatch: pytest.MonkeyPatch) -> FakeStepFunctions:
    fake = FakeStepFunctions()
    monkeypatch.setattr("callback_kit.task.clients.default_client", lambda: fake)
    monkeypatch.setenv("CALLBACK_KIT_HEARTBEAT_INTERVAL", "0")
    return fake


@pytest.fixture
def sns(monkeypatch: pytest.MonkeyPatch) -> FakeSns:
    fake = FakeSns()
    monkeypatch.setattr(load("approval_request"), "_sns", lambda: fake)
    monkeypatch.setenv("APPROVAL_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:approvals")
    monkeypatch.setenv("APPROVAL_API_URL", API_URL)
    return fake


REQUEST = {"orderId": "ord-1003", "customerId": "cust-42", "total": "1500.00", "currency": "EUR"}


# --- the notifier -------------------------------------------------------------------------------------------------


def test_the_notifier_hands_off_and_publishes_links_that_carry_the_token(sfn: FakeStepFunctions, sns: FakeSns) -> None:
    # GIVEN an approval task
    sfn.open_task(TOKEN)
    # WHEN the notifier runs
    load("approval_request").handler(direct_event(TOKEN, REQUEST), FakeLambdaContext())
    # THEN nothing was sent for the task, and the approvers got approve/reject links with the URL-encoded token
    assert sfn.calls_for(TOKEN) == []
    [message] = sns.published
    assert message["Subject"] == "Approve order ord-1003?"
    quoted = urllib.parse.quote(TOKEN, safe="")
    assert f"{API_URL}/approval/approve?token={quoted}" in message["Message"]
    assert f"{API_URL}/approval/reject?token={quoted}" in message["Message"]


def test_a_request_that_cannot_be_published_fails_the_task(sfn: FakeStepFunctions, sns: FakeSns) -> None:
    # GIVEN SNS failing
    sns.fail = True
    sfn.open_task(TOKEN)
    # WHEN the notifier runs / THEN the task fails at once rather than waiting a day for nobody
    load("approval_request").handler(direct_event(TOKEN, REQUEST), FakeLambdaContext())
    outcome = sfn.outcome(TOKEN)
    assert outcome is not None
    assert outcome[:2] == ("failure", "ConnectionError")


def test_a_notifier_without_its_topic_fails_the_task(sfn: FakeStepFunctions, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPROVAL_TOPIC_ARN", raising=False)
    sfn.open_task(TOKEN)
    load("approval_request").handler(direct_event(TOKEN, REQUEST), FakeLambdaContext())
    outcome = sfn.outcome(TOKEN)
    assert outcome is not None
    assert outcome[:2] == ("failure", "RuntimeError")


# --- the approval API ---------------------------------------------------------------------------------------------


def api_event(path: str, query: dict[str, str] | None = None, body: Any = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / "apigateway_approve.json").read_text())
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = path
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
    if body is not None:
        event["httpMethod"] = event["requestContext"]["httpMethod"] = "POST"
        event["body"] = json.dumps(body)
    return event


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = load("approval_decision").handler(event, FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def test_approve_completes_the_task_and_answers_200(sfn: FakeStepFunctions) -> None:
    # GIVEN a handed-off task
    sfn.open_task(TOKEN)
    # WHEN the approve link is opened
    status, body = call(api_event("/approval/approve", {"token": TOKEN}))
    # THEN the task succeeded with the decision, and the answer says so without echoing the token
    assert (status, body) == (200, {"decision": "approved"})
    outcome = sfn.outcome(TOKEN)
    assert outcome is not None
    assert outcome[0] == "success"
    assert outcome[1]["approved"] is True
    # AND a second click is told it was already decided (TaskTimedOut), nothing else is sent
    assert call(api_event("/approval/approve", {"token": TOKEN}))[0] == 409


def test_reject_fails_the_task_with_the_reason(sfn: FakeStepFunctions) -> None:
    # GIVEN a handed-off task / WHEN an application POSTs a rejection with a reason
    sfn.open_task(TOKEN)
    status, body = call(api_event("/approval/reject", body={"token": TOKEN, "reason": "over budget"}))
    # THEN the task failed with the name the state machine's Catch sees, and the reason as cause
    assert (status, body) == (200, {"decision": "rejected"})
    assert sfn.outcome(TOKEN) == ("failure", "Order.NotApproved", "over budget")


@pytest.mark.parametrize(
    ("query", "fault", "status"),
    [
        (None, None, 400),
        ({"token": " "}, None, 400),
        ({"token": TOKEN}, "InvalidToken", 400),
        ({"token": TOKEN}, "AccessDeniedException", 502),
    ],
    ids=["no-token", "blank-token", "not-a-token", "step-functions-refused"],
)
def test_links_that_cannot_decide_answer_a_client_or_gateway_error(
    sfn: FakeStepFunctions, query: dict[str, str] | None, fault: str | None, status: int
) -> None:
    # GIVEN a handed-off task, and a link without a token, or a call Step Functions refuses
    sfn.open_task(TOKEN)
    if fault:
        sfn.inject("SendTaskSuccess", fault, times=99)
    # WHEN the link is opened / THEN the documented status, and the task is still open
    code, body = call(api_event("/approval/approve", query))
    assert code == status
    assert TOKEN not in json.dumps(body)
    assert sfn.outcome(TOKEN) is None
