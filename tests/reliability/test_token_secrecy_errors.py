"""Token secrecy when a call's error quotes the request: a user's Stubber or hook that refuses a callback."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.stub import Stubber

import callback_kit as ck
from callback_kit.logs import BOTOCORE_LOGGERS, fingerprint
from callback_kit.testing import FakeLambdaContext, sqs_event
from tests.reliability.harness import captured_logs

TOKEN = "AQCSTUB" + "s3cr3t" * 60 + "END"


def test_a_stubbers_mismatch_quoting_the_token_is_logged_and_raised_by_fingerprint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a user's client whose Stubber expects other parameters: its error's text quotes the whole request
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    client = botocore.session.get_session().create_client(
        "stepfunctions", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"
    )
    stubber = Stubber(client)
    stubber.add_response("send_task_success", {}, {"taskToken": "another", "output": "{}"})
    stubber.activate()

    @ck.callback_handler(client=client, heartbeat_interval=0)
    def handler(payload: dict[str, int]) -> dict[str, bool]:
        return {"ok": True}

    # WHEN a record is answered through it, with every logger at DEBUG
    with captured_logs(*BOTOCORE_LOGGERS) as logs:
        response = handler(sqs_event({"TaskToken": TOKEN, "n": 1}), FakeLambdaContext())

    # THEN the record is handed back, and no log line holds the token: only its fingerprint
    assert response is not None
    assert len(response["batchItemFailures"]) == 1
    assert logs.lines
    assert any(fingerprint(TOKEN) in line for line in logs.lines)
    for line in logs.lines:
        assert TOKEN not in line, f"token leaked: {line[:300]}"
        assert TOKEN[20:60] not in line, f"token leaked: {line[:300]}"
