"""``callback-kit run`` and ``run_command`` with real child processes against the in-memory Step Functions."""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callback_kit.cli import EXIT_USAGE, main
from callback_kit.container import CommandRun, RunStatus, run_command
from callback_kit.exceptions import (
    ERROR_COMMAND_FAILED,
    ERROR_INVALID_COMMAND_OUTPUT,
    ERROR_OUTPUT_TOO_LARGE,
    ERROR_WORKER_SHUTDOWN,
)
from callback_kit.outcome import MAX_OUTPUT_BYTES
from callback_kit.task.completion import RetryPolicy
from callback_kit.task.heartbeat import HeartbeatScheduler
from callback_kit.testing import FakeStepFunctions

PY = sys.executable
NO_SLEEP = RetryPolicy(sleep=lambda s: None)
#: Long enough for any child here to finish under load; only reached when a test is broken.
WAIT = 30.0


@pytest.fixture
def sfn() -> FakeStepFunctions:
    return FakeStepFunctions()


def py(code: str) -> list[str]:
    return [PY, "-c", code]


def cause_message(sfn: FakeStepFunctions, token: str) -> str:
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[0] == "failure"
    message: str = outcome[2]["errorMessage"]
    return message


def announced(started: Path, body: str, setup: str = "") -> list[str]:
    """A python child that runs ``setup``, creates ``started`` (the test's cue), then runs ``body``."""
    return py(f"{setup}\nopen({str(started)!r}, 'w').close()\n{body}")


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


# --- outcomes -----------------------------------------------------------------------------------------------------


def test_json_stdout_is_the_output(sfn: FakeStepFunctions) -> None:
    # GIVEN a command that prints JSON
    token = sfn.open_task()
    # WHEN it runs for the task
    result = run_command(py("import json; print(json.dumps({'rows': 3}))"), token=token, client=sfn)
    # THEN the task succeeds with that output and the run exits 0
    assert (result.status, result.returncode, result.exit_code) == (RunStatus.SUCCEEDED, 0, 0)
    assert sfn.outcome(token) == ("success", {"rows": 3})


def test_empty_stdout_is_an_empty_object(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    assert run_command(py("pass"), token=token, client=sfn).status is RunStatus.SUCCEEDED
    assert sfn.outcome(token) == ("success", {})


def test_output_file_is_the_output_and_stdout_passes_through(
    sfn: FakeStepFunctions, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a command that logs to stdout and writes its result to a file
    token = sfn.open_task()
    out = tmp_path / "result.json"
    code = f"print('working...'); open({str(out)!r}, 'w').write('[1, 2]')"
    # WHEN it runs with that output file
    result = run_command(py(code), token=token, client=sfn, output_file=str(out))
    # THEN the file is the output, and the log line reached this process's stdout
    assert result.status is RunStatus.SUCCEEDED
    assert sfn.outcome(token) == ("success", [1, 2])
    assert "working..." in capfd.readouterr().out


def test_missing_output_file_is_invalid_output(sfn: FakeStepFunctions, tmp_path: Path) -> None:
    token = sfn.open_task()
    result = run_command(py("pass"), token=token, client=sfn, output_file=str(tmp_path / "never.json"))
    assert (result.status, result.error) == (RunStatus.FAILED, ERROR_INVALID_COMMAND_OUTPUT)
    assert "could not be read" in cause_message(sfn, token)


def test_non_json_stdout_fails_the_task(sfn: FakeStepFunctions) -> None:
    # GIVEN a command that succeeds but prints text
    token = sfn.open_task()
    # WHEN it runs
    result = run_command(py("print('done: 3 rows')"), token=token, client=sfn, retry=NO_SLEEP)
    # THEN the task fails with the documented error, the cause shows the start of the output, and the run exits 4
    assert (result.status, result.error, result.exit_code) == (RunStatus.FAILED, ERROR_INVALID_COMMAND_OUTPUT, 4)
    message = cause_message(sfn, token)
    assert "stdout is not JSON" in message
    assert "done: 3 rows" in message


def test_output_over_the_limit_fails_the_task(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    code = f"import sys; sys.stdout.write('\"' + 'x' * {MAX_OUTPUT_BYTES} + '\"')"
    result = run_command(py(code), token=token, client=sfn)
    assert (result.status, result.error) == (RunStatus.FAILED, ERROR_OUTPUT_TOO_LARGE)


def test_non_zero_exit_fails_with_the_exit_code_and_the_end_of_stderr(sfn: FakeStepFunctions) -> None:
    # GIVEN a command that writes a lot to stderr and exits 3
    token = sfn.open_task()
    code = "import sys\nfor i in range(2000): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    err = io.StringIO()
    # WHEN it runs
    result = run_command(py(code), token=token, client=sfn, stderr=err)
    # THEN the task fails with CommandFailed; the cause names the exit code and keeps the end of stderr, not the start
    assert (result.status, result.returncode, result.error) == (RunStatus.FAILED, 3, ERROR_COMMAND_FAILED)
    message = cause_message(sfn, token)
    assert "exited with code 3" in message
    assert "line 1999" in message
    assert "line 0\n" not in message
    # AND every stderr line passed through to this process's stderr
    assert err.getvalue().count("\n") == 2000


def test_death_by_a_signal_is_named(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    result = run_command(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), token=token, client=sfn)
    assert (result.returncode, result.error) == (-signal.SIGKILL, ERROR_COMMAND_FAILED)
    assert "killed by SIGKILL" in cause_message(sfn, token)


def test_a_command_that_cannot_start_fails_the_task(sfn: FakeStepFunctions, tmp_path: Path) -> None:
    token = sfn.open_task()
    result = run_command([str(tmp_path / "no-such-program")], token=token, client=sfn)
    assert (result.status, result.returncode, result.error) == (RunStatus.FAILED, None, ERROR_COMMAND_FAILED)
    assert "could not be started" in cause_message(sfn, token)


def test_closed_and_undeliverable_answers_have_their_exit_codes(sfn: FakeStepFunctions) -> None:
    # GIVEN a task closed while its command ran, and one whose callback cannot be delivered
    closed, stuck = sfn.open_task(), sfn.open_task()
    sfn.close_task(closed)
    # WHEN each runs / THEN exit 1 (closed, nothing more to do) and 3 (AWS error)
    assert run_command(py("pass"), token=closed, client=sfn).exit_code == 1
    sfn.inject("SendTaskSuccess", "InternalFailure", times=99)
    assert run_command(py("pass"), token=stuck, client=sfn, retry=NO_SLEEP).exit_code == 3
    assert sfn.outcome(stuck) is None


# --- the token ----------------------------------------------------------------------------------------------------


def test_the_token_never_reaches_the_command_or_the_logs(
    sfn: FakeStepFunctions, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the token in the environment, as ECS passes it, and a command that prints what it can see of it
    token = sfn.open_task()
    env = {**os.environ, "TASK_TOKEN": token}
    code = "import os, sys, json; print(sys.argv[1], file=sys.stderr); print(json.dumps(os.environ.get('TASK_TOKEN')))"
    err = io.StringIO()
    # WHEN it runs (given the token as an argument too, which a careless entry point might do), then fails
    with caplog.at_level(logging.DEBUG):
        run_command(
            [*py(code + "; sys.exit(1)"), token], token=token, client=sfn, env=env, token_env="TASK_TOKEN", stderr=err
        )
    # THEN the command's environment had no token, and the copy it printed was masked in stderr and in the cause
    assert token not in err.getvalue()
    assert token not in cause_message(sfn, token)
    assert "tok-" in err.getvalue()
    assert token not in caplog.text
    # AND a succeeding command's stdout showed it no token either
    other = sfn.open_task()
    run_command(
        py(code.replace("sys.argv[1]", "'-'")),
        token=other,
        client=sfn,
        env={**env, "TASK_TOKEN": other},
        token_env="TASK_TOKEN",
    )
    assert sfn.outcome(other) == ("success", None)


# --- heartbeats ---------------------------------------------------------------------------------------------------


def test_heartbeats_are_sent_while_the_command_runs(sfn: FakeStepFunctions, tmp_path: Path) -> None:
    # GIVEN a scheduler driven by hand and a command that waits for a gate
    now = [0.0]
    scheduler = HeartbeatScheduler(clock=lambda: now[0], start_thread=False, jitter=0.0)
    token = sfn.open_task()
    started, gate = tmp_path / "started", tmp_path / "gate"
    code = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.01)"
    run = CommandRun(announced(started, code), token=token, client=sfn, heartbeat_interval=10, scheduler=scheduler)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(run.run()))
    thread.start()
    wait_for(started)

    # WHEN two intervals pass while it runs
    for _ in range(2):
        now[0] += 10
        scheduler.run_pending()

    # THEN two heartbeats were sent; once the command ends, the task succeeds and beats stop
    assert sfn.heartbeats(token) == 2
    gate.touch()
    thread.join(WAIT)
    assert results[0].status is RunStatus.SUCCEEDED
    assert scheduler.open_tasks == 0


def test_a_heartbeat_answered_closed_stops_the_command_and_sends_nothing(
    sfn: FakeStepFunctions, tmp_path: Path
) -> None:
    # GIVEN a long command whose task Step Functions closes (timed out) while it runs
    now = [0.0]
    scheduler = HeartbeatScheduler(clock=lambda: now[0], start_thread=False, jitter=0.0)
    token = sfn.open_task()
    started = tmp_path / "started"
    code = f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep({WAIT})"
    run = CommandRun(py(code), token=token, client=sfn, heartbeat_interval=10, scheduler=scheduler)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(run.run()))
    thread.start()
    wait_for(started)
    sfn.close_task(token)

    # WHEN the next heartbeat is answered "closed"
    now[0] += 10
    scheduler.run_pending()
    thread.join(WAIT)

    # THEN the command was stopped (SIGTERM), nothing but the heartbeat was sent, and the run says closed
    assert not thread.is_alive()
    assert (results[0].status, results[0].returncode) == (RunStatus.CLOSED, -signal.SIGTERM)
    assert [c.api for c in sfn.calls_for(token)] == ["SendTaskHeartbeat"]


# --- shutdown -----------------------------------------------------------------------------------------------------


def _sigterm_self_when(path: Path) -> threading.Thread:
    def send() -> None:
        wait_for(path)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def restore_sigterm() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    yield
    # THEN (every shutdown test) the runner put the previous handlers back
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.usefixtures("restore_sigterm")
def test_sigterm_is_forwarded_and_an_unfinished_task_fails_with_worker_shutdown(
    sfn: FakeStepFunctions, tmp_path: Path
) -> None:
    # GIVEN a long command that dies on SIGTERM (the default), run from the main thread
    token = sfn.open_task()
    started = tmp_path / "started"
    half_way = "import sys, time\nprint('half way', file=sys.stderr, flush=True)"
    _sigterm_self_when(started)
    # WHEN this process gets SIGTERM (ECS stopping the task)
    result = run_command(announced(started, f"time.sleep({WAIT})", half_way), token=token, client=sfn)
    # THEN the command got it too, and the task is failed with WorkerShutdown, the cause saying why
    assert (result.status, result.returncode, result.error) == (
        RunStatus.FAILED,
        -signal.SIGTERM,
        ERROR_WORKER_SHUTDOWN,
    )
    message = cause_message(sfn, token)
    assert "got SIGTERM" in message
    assert "half way" in message


@pytest.mark.usefixtures("restore_sigterm")
def test_a_command_that_finishes_on_sigterm_answers_its_own_result(sfn: FakeStepFunctions, tmp_path: Path) -> None:
    # GIVEN a command that traps SIGTERM and finishes with a partial result
    token = sfn.open_task()
    started = tmp_path / "started"
    code = (
        "import json, signal, sys, time\n"
        "def stop(*_):\n    print(json.dumps({'partial': True})); sys.exit(0)\n"
        f"signal.signal(signal.SIGTERM, stop)\nopen({str(started)!r}, 'w').close()\ntime.sleep({WAIT})"
    )
    _sigterm_self_when(started)
    # WHEN SIGTERM comes / THEN the command's own answer stands
    result = run_command(py(code), token=token, client=sfn)
    assert result.status is RunStatus.SUCCEEDED
    assert sfn.outcome(token) == ("success", {"partial": True})


@pytest.mark.usefixtures("restore_sigterm")
def test_a_command_that_ignores_sigterm_is_killed_after_the_grace_period(
    sfn: FakeStepFunctions, tmp_path: Path
) -> None:
    # GIVEN a command that ignores SIGTERM, and a short grace period
    token = sfn.open_task()
    started = tmp_path / "started"
    ignore = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)"
    _sigterm_self_when(started)
    # WHEN SIGTERM comes / THEN it is killed once the grace period is over, and the task fails with WorkerShutdown
    result = run_command(announced(started, f"time.sleep({WAIT})", ignore), token=token, client=sfn, shutdown_grace=0.2)
    assert (result.returncode, result.error) == (-signal.SIGKILL, ERROR_WORKER_SHUTDOWN)
    assert "killed after the shutdown grace period" in cause_message(sfn, token)


def test_a_stop_before_the_command_started_is_forwarded_when_it_starts(sfn: FakeStepFunctions) -> None:
    # GIVEN a run stopped before it started (the signal came during start-up)
    token = sfn.open_task()
    run = CommandRun(py(f"import time; time.sleep({WAIT})"), token=token, client=sfn)
    run.stop()
    # WHEN it runs / THEN the command is stopped at once and the task fails with WorkerShutdown
    result = run.run()
    assert (result.returncode, result.error) == (-signal.SIGTERM, ERROR_WORKER_SHUTDOWN)


# --- the command line ---------------------------------------------------------------------------------------------


def cli(argv: list[str], sfn: FakeStepFunctions) -> tuple[int, str]:
    err = io.StringIO()
    code = main(argv, client=sfn, stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def test_cli_reads_the_token_from_the_environment(sfn: FakeStepFunctions, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the token in TASK_TOKEN (the default) and in a variable of another name
    token, other = sfn.open_task(), sfn.open_task()
    monkeypatch.setenv("TASK_TOKEN", token)
    monkeypatch.setenv("MY_TOKEN", other)
    # WHEN callback-kit run runs a command for each / THEN each task is answered, and the run exits 0
    assert cli(["run", "--", *py("print('{\"n\": 1}')")], sfn)[0] == 0
    assert cli(["run", "--token-env", "MY_TOKEN", "--heartbeat-interval", "0", *py("print(2)")], sfn)[0] == 0
    assert (sfn.outcome(token), sfn.outcome(other)) == (("success", {"n": 1}), ("success", 2))


def test_cli_output_file_and_failure_exit_code(
    sfn: FakeStepFunctions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token, failing = sfn.open_task(), sfn.open_task()
    out = tmp_path / "out.json"
    monkeypatch.setenv("TASK_TOKEN", token)
    code, _ = cli(["run", "--output-file", str(out), "--", *py(f"open({str(out)!r}, 'w').write('true')")], sfn)
    assert (code, sfn.outcome(token)) == (0, ("success", True))
    monkeypatch.setenv("TASK_TOKEN", failing)
    assert cli(["run", "--", *py("raise SystemExit(5)")], sfn)[0] == 4
    assert "exited with code 5" in cause_message(sfn, failing)


def test_cli_without_a_token_runs_nothing_and_sends_nothing(
    sfn: FakeStepFunctions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN no token in the environment, and a command that would leave a trace
    monkeypatch.delenv("TASK_TOKEN", raising=False)
    trace = tmp_path / "ran"
    # WHEN callback-kit run is called / THEN it is a usage error: the command did not run, nothing was sent
    code, err = cli(["run", "--", *py(f"open({str(trace)!r}, 'w').close()")], sfn)
    assert code == EXIT_USAGE
    assert "$TASK_TOKEN is not set" in err
    assert not trace.exists()
    assert sfn.calls == []
    # AND an empty variable, a token too long to be one, or no command are usage errors too
    for value, argv in (("", py("pass")), ("x" * 3000, py("pass")), ("tok", [])):
        monkeypatch.setenv("TASK_TOKEN", value)
        assert cli(["run", "--", *argv], sfn)[0] == EXIT_USAGE
    assert sfn.calls == []
