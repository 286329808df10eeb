"""`callback-kit activity`: what its --help promises about exit codes is what it does."""

from __future__ import annotations

import io
import re
from typing import Any

from callback_kit.cli import EXIT_AWS, EXIT_USAGE, main
from callback_kit.testing import FakeStepFunctions

ARN = "arn:aws:states:us-east-1:123456789012:activity:cli"


def lambda_style(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return event


def echo(payload: Any) -> Any:
    return payload


def test_help_lists_every_exit_code_the_command_uses() -> None:
    # GIVEN / WHEN `callback-kit activity --help`
    out = io.StringIO()
    assert main(["activity", "--help"], stdout=out) == 0

    # THEN it lists 0, 2 and 3, and says which poll errors never stop the worker
    listed = re.findall(r"^  (\d)  ", out.getvalue(), flags=re.MULTILINE)
    assert listed == ["0", "2", "3"]
    assert "credentials" in out.getvalue()
    assert "does not\nstop the worker" in out.getvalue()


def test_a_function_that_cannot_take_the_payload_is_a_usage_error() -> None:
    # GIVEN a Lambda-style function of (event, context)
    err = io.StringIO()

    # WHEN `callback-kit activity` is pointed at it
    code = main(["activity", ARN, f"{__name__}:lambda_style"], client=FakeStepFunctions(), stderr=err)

    # THEN it exits 2 with the reason, without polling
    assert code == EXIT_USAGE
    assert "takes 2 arguments" in err.getvalue()


def test_rejected_credentials_stop_the_worker_with_exit_3() -> None:
    # GIVEN Step Functions that rejects the worker's credentials on every poll
    fake = FakeStepFunctions(activity_poll_seconds=0.01)
    fake.inject("GetActivityTask", "UnrecognizedClientException", times=1000)
    err = io.StringIO()

    # WHEN `callback-kit activity` runs
    code = main(["activity", ARN, f"{__name__}:echo", "--heartbeat-interval", "0"], client=fake, stderr=err)

    # THEN it stops at once with exit 3 and says what to set, as its --help says
    assert code == EXIT_AWS
    assert "AWS configuration error" in err.getvalue()
