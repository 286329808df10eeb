"""The README's quick start runs as written: its code saved as shown, its commands run on the repo's events/.

A new user copies the quick start into ``quickstart.py`` and runs the README's ``callback-kit invoke`` lines in a
checkout. These tests do exactly that in a temporary directory holding a copy of ``events/``, with the installed
``callback-kit`` command, so that the README, the sample events and the command cannot drift apart.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMAND = Path(sys.executable).with_name("callback-kit")


def block_after(heading: str, lang: str) -> str:
    """The first fenced ``lang`` block after ``heading`` in the README."""
    start = README.index(f"\n{heading}\n")
    opening = README.index(f"```{lang}\n", start) + len(f"```{lang}\n")
    return README[opening : README.index("```", opening)]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory like the user's checkout: the sample events, and the README's code saved as the README says."""
    shutil.copytree(ROOT / "events", tmp_path / "events")
    (tmp_path / "quickstart.py").write_text(block_after("## Quick start", "python"), encoding="utf-8")
    (tmp_path / "pydantic_quickstart.py").write_text(
        block_after("### With a pydantic model", "python"), encoding="utf-8"
    )
    return tmp_path


def run(command_line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(command_line, comments=True)
    assert argv[0] == "callback-kit", command_line
    return subprocess.run(  # noqa: S603 - the installed command, arguments from the README
        [str(COMMAND), *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def sent_output(stdout: str) -> object:
    """The JSON output `callback-kit invoke` printed under its SendTaskSuccess line."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("SendTaskSuccess")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("handler returned:"))
    return json.loads("\n".join(lines[start:end]))


def test_the_quick_start_commands_run_as_written(checkout: Path) -> None:
    # GIVEN the quick start's invoke lines, as the README shows them
    lines = [line for line in block_after("## Quick start", "bash").splitlines() if line.strip()]
    assert len(lines) == 2, lines

    # WHEN each runs in the checkout
    approved, rejected = (run(line, checkout) for line in lines)

    # THEN the sample order is approved with the output the README's comment promises
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert sent_output(approved.stdout) == {"orderId": "ord-1001", "approved": True, "total": 38.9}
    assert '{"total": 38.9, ...}' in lines[0]
    # AND the over-large order fails with the error name the state machine can Catch
    assert rejected.returncode == 0, rejected.stdout + rejected.stderr
    assert "SendTaskFailure" in rejected.stdout
    assert "error: Order.Rejected" in rejected.stdout
    assert "Order.Rejected" in lines[1]


def test_the_quick_start_reads_what_the_sample_events_send() -> None:
    # GIVEN the SQS sample event's message body
    record = json.loads((ROOT / "events" / "sqs_order_check.json").read_text(encoding="utf-8"))["Records"][0]
    body = json.loads(record["body"])
    # THEN it is the shape the quick start describes, and carries what the quick start reads
    assert set(body) == {"TaskToken", "order"}
    code = block_after("## Quick start", "python")
    for field in ("orderId", "items"):
        assert field in body["order"]
        assert f'order["{field}"]' in code
    for field in ("unitPrice", "quantity"):
        assert all(field in item for item in body["order"]["items"])
        assert f'item["{field}"]' in code


def test_the_pydantic_example_validates_and_returns_a_typed_result(checkout: Path) -> None:
    # GIVEN the README's pydantic example, saved as a module
    # WHEN it is invoked on the sample SQS event
    result = run("callback-kit invoke pydantic_quickstart:handler --event events/sqs_order_check.json", checkout)
    # THEN it sends the output its comment shows
    assert result.returncode == 0, result.stdout + result.stderr
    code = block_after("### With a pydantic model", "python")
    promised = code[code.index("SendTaskSuccess(output='") + len("SendTaskSuccess(output='") :].split("'")[0]
    assert sent_output(result.stdout) == json.loads(promised)


def test_the_pydantic_example_fails_an_invalid_payload_as_invalid_payload(checkout: Path) -> None:
    # GIVEN an order whose quantity is not a number
    event = json.loads((checkout / "events" / "sqs_order_check.json").read_text(encoding="utf-8"))
    body = json.loads(event["Records"][0]["body"])
    body["order"]["items"][0]["quantity"] = "two"
    event["Records"][0]["body"] = json.dumps(body)
    (checkout / "bad.json").write_text(json.dumps(event), encoding="utf-8")
    # WHEN / THEN the task fails with CallbackKit.InvalidPayload, naming the field
    result = run("callback-kit invoke pydantic_quickstart:handler --event bad.json", checkout)
    assert "error: CallbackKit.InvalidPayload" in result.stdout
    assert "items.0.quantity" in result.stdout
