"""What a failure puts into the execution history: a business failure's text, or the user's own frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.testing import FakeStepFunctions, direct_event

HERE = Path(__file__).resolve()


def run(fn: Any) -> tuple[Any, ...]:
    sfn = FakeStepFunctions()
    token = sfn.open_task()
    ck.process_event(direct_event(token, {"n": 1}), None, fn, client=sfn, heartbeat_interval=0)
    outcome = sfn.outcome(token)
    assert outcome is not None
    return outcome


def test_a_task_failed_sends_its_message_as_the_cause() -> None:
    # GIVEN a function that fails its task with a business error and no cause=
    def fn(payload: dict[str, int]) -> None:
        raise ck.TaskFailed("the document is over 10 MB", error="Document.TooLarge")

    # WHEN it runs
    outcome = run(fn)

    # THEN the state machine sees the message as the cause: no JSON, no stack trace, no file path
    assert outcome == ("failure", "Document.TooLarge", "the document is over 10 MB")


def test_a_task_failed_with_a_cause_sends_that_cause() -> None:
    # GIVEN a business failure with a cause of its own
    def fn(payload: dict[str, int]) -> None:
        raise ck.TaskFailed("too large", error="Document.TooLarge", cause="12 MB, limit 10 MB")

    # WHEN it runs / THEN that cause is sent as given
    assert run(fn) == ("failure", "Document.TooLarge", "12 MB, limit 10 MB")


def _crash(payload: dict[str, int]) -> None:
    raise KeyError("total")


async def _crash_async(payload: dict[str, int]) -> None:
    raise KeyError("total")


@pytest.mark.parametrize("fn", [_crash, _crash_async], ids=["sync", "async"])
def test_a_crash_keeps_lambdas_cause_with_the_users_frames_only(fn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a function that crashes, run from the repository root
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    monkeypatch.chdir(HERE.parents[2])

    # WHEN it runs
    cause = run(fn)[2]

    # THEN the cause is Lambda's JSON, its frames are the user's, and their paths are relative to the code root
    assert (cause["errorType"], cause["errorMessage"]) == ("KeyError", "'total'")
    frames = cause["stackTrace"]
    assert len(frames) == 1, frames
    assert frames[0].startswith('  File "tests/unit/test_failure_cause.py", line ')
    assert "callback_kit" not in "".join(frames)


def test_paths_are_relative_to_the_lambda_task_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN Lambda's code root is this test's directory, and the working directory is elsewhere
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(HERE.parent))
    monkeypatch.chdir(tmp_path)

    # WHEN a function crashes
    frames = run(_crash)[2]["stackTrace"]

    # THEN its frame names the file relative to that root
    assert frames[0].startswith('  File "test_failure_cause.py", line ')
