"""``callback-kit run``'s metrics: one EMF document per task with ``Source=container``, from the API and the CLI."""

from __future__ import annotations

import io
import sys

import pytest
from aws_lambda_powertools import Metrics

from callback_kit.cli import main
from callback_kit.container import run_command
from callback_kit.container.command import RunStatus
from callback_kit.testing import FakeStepFunctions
from tests.observe.conftest import NAMESPACE, emf_documents, total

PRINT_ROWS = [sys.executable, "-c", "print('{\"rows\": 3}')"]
FAIL = [sys.executable, "-c", "import sys; sys.exit(3)"]


@pytest.mark.parametrize(
    ("argv", "status", "counted"),
    [(PRINT_ROWS, RunStatus.SUCCEEDED, "TaskSucceeded"), (FAIL, RunStatus.FAILED, "TaskFailed")],
)
def test_a_command_run_writes_one_document_with_source_container(
    metrics: Metrics, capsys: pytest.CaptureFixture[str], argv: list[str], status: RunStatus, counted: str
) -> None:
    # GIVEN a task token and a run with metrics on
    sfn = FakeStepFunctions()
    token = sfn.open_task()
    # WHEN the command runs and its answer is sent
    result = run_command(argv, token=token, client=sfn, heartbeat_interval=0, metrics=metrics)
    # THEN one EMF document counts the task under its outcome, with Source=container and its timings
    assert result.status is status
    [document] = emf_documents(capsys.readouterr().out)
    assert document["Source"] == "container"
    assert total(document, counted) == 1
    others = {"TaskSucceeded", "TaskFailed", "TaskClosed", "TaskHandedBack"} - {counted}
    assert all(total(document, name) == 0 for name in others)
    assert document["TaskDuration"]
    assert document["CompletionLatency"]
    assert token not in str(document)


def test_a_task_closed_before_the_answer_counts_as_closed(metrics: Metrics, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a task that timed out while its command ran
    sfn = FakeStepFunctions()
    token = sfn.open_task()
    sfn.close_task(token, "TaskTimedOut")
    # WHEN the command ends and its answer finds the task closed
    result = run_command(PRINT_ROWS, token=token, client=sfn, heartbeat_interval=0, metrics=metrics)
    # THEN it counts under TaskClosed
    assert result.status is RunStatus.CLOSED
    [document] = emf_documents(capsys.readouterr().out)
    assert total(document, "TaskClosed") == 1


def test_the_run_command_takes_metrics_from_its_options(
    metrics: Metrics, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a token in the environment and the namespace given on the command line
    sfn = FakeStepFunctions()
    monkeypatch.setenv("TASK_TOKEN", sfn.open_task())
    out, err = io.StringIO(), io.StringIO()
    # WHEN callback-kit run is told to write metrics
    code = main(["run", "--metrics-namespace", NAMESPACE, "--heartbeat-interval", "0", "--", *PRINT_ROWS],
                client=sfn, stdout=out, stderr=err)  # fmt: skip
    # THEN the task succeeded and one document went to stdout with Source=container
    assert code == 0
    [document] = emf_documents(capsys.readouterr().out)
    assert (document["Source"], total(document, "TaskSucceeded")) == ("container", 1)


def test_metrics_without_a_namespace_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no metrics namespace in the environment
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    sfn = FakeStepFunctions()
    monkeypatch.setenv("TASK_TOKEN", sfn.open_task())
    err = io.StringIO()
    # WHEN --metrics is asked for
    code = main(["run", "--metrics", "--", *PRINT_ROWS], client=sfn, stdout=io.StringIO(), stderr=err)
    # THEN it is refused before anything runs, naming what to set
    assert code == 2
    assert "POWERTOOLS_METRICS_NAMESPACE" in err.getvalue()
    assert sfn.calls == []
