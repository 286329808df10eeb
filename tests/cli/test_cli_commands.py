"""The callback-kit command's send-* commands and exit codes, in-process on the fake and as a real process on moto."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callback_kit.cli import ENV_TOKEN, EXIT_AWS, EXIT_CLOSED, EXIT_OK, EXIT_USAGE, main
from callback_kit.outcome import MAX_OUTPUT_BYTES
from callback_kit.simulator import moto_server
from callback_kit.testing import FakeStepFunctions


def run(argv: list[str], fake: FakeStepFunctions, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, client=fake, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def fake() -> FakeStepFunctions:
    return FakeStepFunctions()


def test_send_success_delivers_the_output(fake: FakeStepFunctions) -> None:
    # GIVEN an open task
    token = fake.open_task()
    # WHEN an operator completes it with a JSON output
    code, out, _ = run(["send-success", token, "--output", '{"approved": true}'], fake)
    # THEN it exits 0, the output is delivered, and the token is not echoed
    assert code == EXIT_OK
    assert fake.outcome(token) == ("success", {"approved": True})
    assert token not in out
    assert "tok-" in out


def test_send_success_reads_the_output_from_a_file(fake: FakeStepFunctions, tmp_path: Path) -> None:
    # GIVEN an output file and a token
    path = tmp_path / "out.json"
    path.write_text("[1, 2, 3]", encoding="utf-8")
    token = fake.open_task()
    # WHEN / THEN
    assert run(["send-success", token, "--output-file", str(path)], fake)[0] == EXIT_OK
    assert fake.outcome(token) == ("success", [1, 2, 3])


def test_the_token_can_come_from_stdin_or_the_environment(
    fake: FakeStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two open tasks
    from_stdin, from_env = fake.open_task(), fake.open_task()
    # WHEN one token is piped in and the other set in the environment
    assert run(["send-heartbeat", "-"], fake, stdin=from_stdin + "\n")[0] == EXIT_OK
    monkeypatch.setenv(ENV_TOKEN, from_env)
    assert run(["send-failure", "--error", "Ops.Cancelled", "--cause", "by hand"], fake)[0] == EXIT_OK
    # THEN each reached its task
    assert fake.heartbeats(from_stdin) == 1
    assert fake.outcome(from_env) == ("failure", "Ops.Cancelled", "by hand")


@pytest.mark.parametrize(
    "argv",
    [
        ["send-success", "--output", "{}"],  # no token anywhere
        ["send-success", "TOKEN", "--output", "{not json"],
        ["send-success", "TOKEN", "--output", json.dumps("x" * MAX_OUTPUT_BYTES)],  # over 262,144 bytes
        ["send-success", "TOKEN", "--output", "{}", "--output-file", "f.json"],
        ["send-success", "TOKEN", "--output-file", "/nonexistent/out.json"],
        ["send-failure", "TOKEN", "--error", "States.Timeout"],  # reserved prefix
        ["send-failure", "TOKEN"],  # --error is required
        ["send-heartbeat", "-"],  # empty stdin
        ["no-such-command"],
        [],
    ],
)
def test_usage_errors_exit_2_and_send_nothing(
    argv: list[str], fake: FakeStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an open task and no token in the environment
    monkeypatch.delenv(ENV_TOKEN, raising=False)
    token = fake.open_task()
    argv = [token if a == "TOKEN" else a for a in argv]
    # WHEN the command line is wrong
    code, _, err = run(argv, fake)
    # THEN it exits 2 with a message, and Step Functions heard nothing
    assert code == EXIT_USAGE
    assert err
    assert fake.calls == []


@pytest.mark.parametrize(
    "argv",
    [["send-success", "T", "--output", "{}"], ["send-failure", "T", "--error", "E"], ["send-heartbeat", "T"]],
)
def test_a_closed_task_exits_1(argv: list[str], fake: FakeStepFunctions) -> None:
    # GIVEN a task that timed out
    token = fake.open_task()
    fake.close_task(token)
    # WHEN it is answered by hand
    code, _, err = run([token if a == "T" else a for a in argv], fake)
    # THEN the command says so and exits 1
    assert code == EXIT_CLOSED
    assert "already closed" in err


@pytest.mark.parametrize(
    "command", [["send-heartbeat"], ["send-success", "--output", "{}"], ["send-failure", "--error", "E"]]
)
def test_an_invalid_token_is_reported_as_invalid_not_closed(command: list[str], fake: FakeStepFunctions) -> None:
    # GIVEN / WHEN a token Step Functions never issued (InvalidToken: quoted, URL-encoded, truncated)
    code, _, err = run([command[0], "not-a-real-token", *command[1:]], fake)
    # THEN the command says the token is invalid, not that the task is closed
    assert code == EXIT_USAGE
    assert "invalid token" in err
    assert "already closed" not in err


@pytest.mark.parametrize("code_name", ["AccessDeniedException", "KmsAccessDeniedException"])
def test_aws_errors_exit_3(code_name: str, fake: FakeStepFunctions) -> None:
    # GIVEN Step Functions refusing the call
    token = fake.open_task()
    fake.inject("*", code_name, times=10)
    # WHEN / THEN the command reports an AWS error
    code, _, err = run(["send-success", token], fake)
    assert code == EXIT_AWS
    assert code_name in err


COMMANDS = [[], ["activity"], ["send-success"], ["send-failure"], ["send-heartbeat"], ["invoke"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_exit_codes(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN / WHEN --help
    code = main([*command, "--help"])
    # THEN it exits 0 and documents the exit codes
    assert code == EXIT_OK
    assert "exit codes" in capsys.readouterr().out


# -- as a real process, against moto's server ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    # moto checks tokens only with its state machine simulator on; off, it accepts any token.
    with moto_server() as endpoint:
        yield endpoint


def cli(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("callback-kit")
    return subprocess.run(  # noqa: S603 - the installed command, with arguments built by the tests
        [str(exe), *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
    )


def aws_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != ENV_TOKEN}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_ENDPOINT_URL=endpoint)
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    return env


def test_the_installed_command_answers_an_unknown_token_as_invalid(moto_endpoint: str) -> None:
    # GIVEN Step Functions (moto) that never issued this token, given through the environment
    env = {**aws_env(moto_endpoint), ENV_TOKEN: "00000000-0000-0000-0000-000000000000"}
    # WHEN the operator sends a success and a heartbeat
    success = cli(["send-success", "--output", '{"ok": true}'], env)
    heartbeat = cli(["send-heartbeat", "-"], aws_env(moto_endpoint), stdin="00000000-0000-0000-0000-000000000000")
    # THEN both say the token is invalid (exit 2), not that a task was closed
    assert (success.returncode, heartbeat.returncode) == (EXIT_USAGE, EXIT_USAGE), success.stderr
    assert "invalid token" in success.stderr


def test_the_installed_command_exits_3_without_a_region(moto_endpoint: str) -> None:
    # GIVEN an environment with no AWS region
    env = aws_env(moto_endpoint)
    del env["AWS_DEFAULT_REGION"]
    env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    # WHEN / THEN the AWS error exit code, with botocore's reason
    result = cli(["send-heartbeat", "some-token"], env)
    assert result.returncode == EXIT_AWS
    assert "region" in result.stderr.lower()


def test_the_installed_command_exits_2_on_usage_errors(moto_endpoint: str) -> None:
    # GIVEN / WHEN a missing required option / THEN argparse's usage exit code
    result = cli(["send-failure", "tok"], aws_env(moto_endpoint))
    assert result.returncode == EXIT_USAGE
    assert "--error" in result.stderr
