"""The command's global options (-v, --version) and its AWS configuration errors (no region, no credentials)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import pytest

import callback_kit
from callback_kit.cli import EXIT_AWS, EXIT_OK, EXIT_USAGE, build_parser, main
from callback_kit.logs import get_logger
from callback_kit.testing import FakeStepFunctions

ARN = "arn:aws:states:eu-west-1:123456789012:activity:ageCheck"


def echo(payload: dict[str, object]) -> dict[str, object]:
    return payload


@pytest.fixture
def no_aws_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment with no AWS region and no credentials anywhere (files, variables, instance metadata)."""
    # Set first, so that undoing restores its absence too: the activity command sets it from the ARN.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "")
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr("callback_kit.task.clients._default_client", None)
    # A fresh botocore session too: the shared one caches the credentials an earlier test's client resolved.
    monkeypatch.setattr("callback_kit.task.timeouts._session", None)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def run(argv: list[str], client: object = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, client=client, stdin=io.StringIO(""), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "send-heartbeat", "T"],
        ["send-heartbeat", "-v", "T"],
        ["--verbose", "invoke", "m:f", "--event", "e.json"],
        ["invoke", "m:f", "--event", "e.json", "--verbose"],
        ["-v", "activity", ARN, "m:f"],
        ["send-failure", "T", "--error", "E", "-v"],
    ],
)
def test_verbose_goes_before_or_after_the_command(argv: list[str]) -> None:
    # GIVEN / WHEN -v on either side of the command / THEN it is on
    assert build_parser().parse_args(argv).verbose is True


@pytest.mark.parametrize("argv", [["send-heartbeat", "T"], ["send-success", "T"], ["invoke", "m:f", "--event", "e"]])
def test_verbose_is_off_unless_asked(argv: list[str]) -> None:
    # GIVEN / WHEN no -v / THEN it is off (a command's default does not hide a -v given before it, tested above)
    assert build_parser().parse_args(argv).verbose is False


def test_verbose_turns_on_info_logs_for_a_send_command() -> None:
    # GIVEN an open task
    fake = FakeStepFunctions()
    token = fake.open_task()
    logger = get_logger()
    before = logger.log_level
    try:
        # WHEN a heartbeat is sent with -v before the command
        code, _, _ = run(["-v", "send-heartbeat", token], client=fake)
        # THEN callback-kit's INFO lines are on
        assert code == EXIT_OK
        assert logger.log_level == logging.INFO
        # AND without -v they are off again
        run(["send-heartbeat", token], client=fake)
        assert logger.log_level == logging.WARNING
    finally:
        logger.setLevel(before)


def test_version_prints_the_package_version() -> None:
    # GIVEN / WHEN --version
    code, out, _ = run(["--version"])
    # THEN it prints the version and exits 0
    assert code == EXIT_OK
    assert out.strip() == f"callback-kit {callback_kit.__version__}"


def test_python_dash_m_callback_kit_runs_the_command() -> None:
    # GIVEN / WHEN the module is run as a script
    result = subprocess.run(
        [sys.executable, "-m", "callback_kit", "--version"], capture_output=True, text=True, timeout=60
    )
    # THEN it is the command
    assert result.returncode == EXIT_OK, result.stderr
    assert result.stdout.strip() == f"callback-kit {callback_kit.__version__}"


@pytest.mark.usefixtures("no_aws_config")
def test_activity_takes_the_region_from_the_arn_and_exits_3_without_credentials() -> None:
    # GIVEN no region and no credentials configured
    # WHEN the activity worker is started on an eu-west-1 ARN
    code, _, err = run(["activity", ARN, f"{__name__}:echo", "--heartbeat-interval", "0"])
    # THEN the region came from the ARN (so the error is the credentials, not the region) ...
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
    # AND the worker did not retry forever: exit 3 with a hint, and no traceback
    assert code == EXIT_AWS
    assert "AWS configuration error: no AWS credentials were found" in err
    assert "AWS_PROFILE" in err
    assert "Traceback" not in err


def test_activity_prefers_the_arn_region_over_a_different_configured_one(
    no_aws_config: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a configured region that is not the activity's, and no credentials
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # WHEN the worker starts on an eu-west-1 ARN
    code, _, err = run(["activity", ARN, f"{__name__}:echo", "--heartbeat-interval", "0"])
    # THEN it says it uses the ARN's region, and uses it
    assert "using the ARN's region eu-west-1, not the configured us-east-1" in err
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert code == EXIT_AWS


@pytest.mark.usefixtures("no_aws_config")
@pytest.mark.parametrize(
    "argv", [["send-heartbeat", "T"], ["send-success", "T", "--output", "{}"], ["send-failure", "T", "--error", "E"]]
)
def test_send_commands_without_a_region_exit_3_with_a_hint(argv: list[str]) -> None:
    # GIVEN no region configured / WHEN a task is answered by hand with the default client
    code, _, err = run(argv)
    # THEN exit 3, naming what to set
    assert code == EXIT_AWS
    assert "AWS configuration error: no AWS region is configured" in err
    assert "AWS_DEFAULT_REGION" in err


@pytest.mark.usefixtures("no_aws_config")
def test_send_commands_without_credentials_exit_3_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a region but no credentials
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    # WHEN a heartbeat is sent with the default client
    code, _, err = run(["send-heartbeat", "T"])
    # THEN exit 3 with the credentials hint (the completer does not retry it as transient)
    assert code == EXIT_AWS
    assert "no AWS credentials were found" in err


def test_activity_with_a_bad_arn_is_still_a_usage_error() -> None:
    # GIVEN / WHEN an ARN that is not an activity's / THEN exit 2, before any AWS configuration is looked at
    code, _, err = run(["activity", "arn:aws:states:eu-west-1:1:stateMachine:x", f"{__name__}:echo"])
    assert code == EXIT_USAGE
    assert "activity ARN" in err
