"""The local demo (``python -m demo``, the README's main command) runs end to end.

It runs in-process on moto's simulator, as ``scripts/demo`` runs it, with observers that collect every raw
token and durable callback id the workers were handed, so that the output can be checked for leaks. The durable
case runs where AWS's local durable runner does (Python 3.11 and later); elsewhere the demo skips it and says why.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from callback_kit.logs import fingerprint
from callback_kit.simulator import Delivery
from callback_kit.sources import parse_event
from demo import DemoContext, durable, run
from demo.template import find_checkout, load_template, resolve

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--color", "never", "--work-seconds", "0.3", "--heartbeat-interval", "0.1"]
#: Whether the durable case runs here (AWS's local durable runner needs Python 3.11 and later).
DURABLE = durable.unavailable() is None
CASES = 6 if DURABLE else 5


def raw_ids(delivery: Delivery, kind: str) -> list[str]:
    """The task tokens (``stepfunctions``) or durable callback ids (``durable``) a worker invocation carried (the
    simulator's ``lambda`` source is a direct payload)."""
    source = "direct" if delivery.source == "lambda" else delivery.source
    records = parse_event(delivery.event, source=source)  # type: ignore[arg-type]
    return [r.token for r in records if r.token and r.kind == kind]


def test_demo_runs_the_success_and_failure_cases_and_prints_no_raw_token(tmp_path: Path) -> None:
    # GIVEN observers that collect every token handed to a worker (SQS, EventBridge, direct, activity), and every
    # durable callback id (on the same SQS queue)
    tokens: set[str] = set()
    callback_ids: set[str] = set()

    def on_ready(ctx: DemoContext) -> None:
        ctx.sim.on_delivery(lambda d: tokens.update(raw_ids(d, "stepfunctions")))
        ctx.sim.on_delivery(lambda d: callback_ids.update(raw_ids(d, "durable")))
        ctx.bridge.on_handed_out(lambda handed: tokens.add(handed.token))

    out = io.StringIO()

    # WHEN the demo runs
    chart = tmp_path / "metrics.png"
    status = run([*FAST, "--root", str(ROOT), "--chart", str(chart)], out=out, on_ready=on_ready)

    # THEN every case ended as expected, and the output says so
    text = out.getvalue()
    assert status == 0, text
    assert "state machine callback-kit-callbacks from statemachine/callbacks.asl.json" in text
    assert f"== case 1/{CASES}: success" in text
    assert f"== case 3/{CASES}: failure" in text
    assert text.count(": as expected") == CASES
    assert '-> SUCCEEDED with orderCheck.ageCheck="online"' in text
    assert '-> SUCCEEDED with orderCheck.ageCheck="in_store"' in text
    assert "-> FAILED with error Order.Rejected: as expected" in text
    # AND the hand-off: one order approved with callback-kit send-success, one rejected with send-failure
    assert '-> SUCCEEDED with orderCheck.approval="manual", approval.approved=true' in text
    assert "-> FAILED with error Order.NotApproved: as expected" in text
    assert "ord-1003: callback-kit send-success tok-" in text
    assert "ord-1004: callback-kit send-failure tok-" in text
    assert f"demo passed: all {CASES} executions ended as expected" in text
    if DURABLE:
        # AND the durable function's callback id went through the same queue to the same order-check worker, which
        # beat and answered it through the Lambda API
        assert "== case 6/6: durable function" in text
        assert "started on AWS's local durable runner" in text
        durable_case = text[text.index("== case 6/6") : text.index("== metrics")]
        assert "callback-kit-OrderCheckFunction (SQS batch, tok-" in durable_case
        assert "SendDurableExecutionCallbackHeartbeat tok-" in durable_case
        assert "SendDurableExecutionCallbackSuccess tok-" in durable_case
        assert '-> SUCCEEDED with status="approved", orderCheck.ageCheck="online": as expected' in durable_case
        assert re.search(r"ok +durable +SUCCEEDED", text)
    else:
        assert "case durable skipped: AWS's local durable runner needs Python 3.11 or later" in text
    # AND it showed each kind of progress line
    for kind in ("state entered", "token out", "heartbeat", "callback", "task done", "task failed", "SUCCEEDED"):
        assert f"  {kind}" in text, kind
    assert "GetActivityTask of activity worker store-terminal-1" in text
    # AND every token appears as a fingerprint only: 3 tasks per success case (the approved one too), 1 in the
    # rejected case, 2 in the declined one
    assert len(tokens) == 12, tokens
    # AND so does the durable function's callback id
    assert len(callback_ids) == (1 if DURABLE else 0), callback_ids
    for token in tokens | callback_ids:
        assert token not in text
        assert fingerprint(token) in text
    # AND no colours when asked for none
    assert "\033[" not in text
    # AND the metrics the workers wrote are added up per worker: the order check answered 4 tasks (and the durable
    # callback, where it runs) and failed 1 (case 3)
    metrics = text[text.index("== metrics the workers wrote") : text.index("== summary")]
    rows = {
        line.split(")")[0].strip() + ")": line.split(")")[1].split()
        for line in metrics.splitlines()[2:]
        if ")" in line and "chart:" not in line
    }
    assert set(rows) == {
        "order-check (sqs)",
        "notify (eventbridge)",
        "age-check (direct)",
        "age-check (activity)",
        "request-approval (direct)",
    }
    assert rows["order-check (sqs)"][1:3] == ["5" if DURABLE else "4", "1"]  # succeeded, failed
    assert rows["request-approval (direct)"][5] == "2"  # handed off
    # AND they were drawn as a PNG chart, where the output says
    assert f"chart: {chart}" in metrics
    assert chart.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_demo_without_the_durable_runner_skips_the_durable_case_and_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a Python where AWS's local durable runner cannot run (as on 3.10)
    monkeypatch.setattr(durable, "unavailable", lambda: "AWS's local durable runner needs Python 3.11 or later")
    out = io.StringIO()

    # WHEN the demo runs
    status = run([*FAST, "--root", str(ROOT), "--no-chart"], out=out)

    # THEN the five state machine cases ran and passed, and the durable one was skipped with its reason in one line
    text = out.getvalue()
    assert status == 0, text
    assert "== case 5/5: hand-off" in text
    assert "demo passed: all 5 executions ended as expected" in text
    reasons = [line for line in text.splitlines() if "skipped: AWS's local durable runner needs Python 3.11" in line]
    assert reasons == ["case durable skipped: AWS's local durable runner needs Python 3.11 or later"]
    assert re.search(r"skip +durable +AWS's local durable runner needs Python 3.11 or later", text)


def test_demo_outside_a_checkout_says_so(tmp_path: Path) -> None:
    # GIVEN a directory that is not a callback-kit checkout
    out = io.StringIO()

    # WHEN the demo is pointed at it
    status = run(["--root", str(tmp_path)], out=out)

    # THEN it stops at once with a clear message
    assert status == 2
    assert "is not a callback-kit checkout" in out.getvalue()
    assert "template.yaml" in out.getvalue()


def test_the_template_resolves_every_substitution_of_the_state_machine() -> None:
    # GIVEN the SAM template, read with the demo's loader, and the resources the demo would create
    template = load_template(find_checkout(ROOT) / "template.yaml")
    machine = next(
        r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::StateMachine"
    )
    refs: dict[str, dict[str, str]] = {"AWS::StackName": {"Ref": "demo"}}
    for logical_id in template["Resources"]:
        refs[logical_id] = {"Ref": f"ref:{logical_id}", "Arn": f"arn:{logical_id}"}

    # WHEN the substitutions are resolved
    resolved: dict[str, Any] = resolve(machine["DefinitionSubstitutions"], refs)

    # THEN each names a created resource, and the ASL uses exactly these placeholders
    assert all(isinstance(v, str) and v.split(":", 1)[0] in ("ref", "arn") for v in resolved.values()), resolved
    asl = (ROOT / machine["DefinitionUri"]).read_text(encoding="utf-8")
    json.loads(asl)
    for name in resolved:
        assert "${" + name + "}" in asl


def test_demo_exits_non_zero_with_a_clear_message_when_an_execution_does_not_end_as_expected() -> None:
    # GIVEN workers slower than the demo's time limit for one execution
    out = io.StringIO()

    # WHEN the demo runs
    status = run(["--color", "never", "--root", str(ROOT), "--work-seconds", "1.5", "--timeout", "0.3"], out=out)

    # THEN it reports each case as not ended as expected, and exits 1
    text = out.getvalue()
    assert status == 1, text
    assert "the execution did not end within 0.3s" in text
    names = "online, instore, rejected, approved, declined" + (", durable" if DURABLE else "")
    assert f"demo FAILED: {CASES} of {CASES} cases did not end as expected ({names})" in text


def test_demo_names_an_unsupported_moto_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an installed moto that no longer has something the simulator relies on
    from callback_kit.simulator import moto_adapter

    gone = moto_adapter.Contract("callback-wait", "moto:NoSuchThing", "a task waits in NoSuchThing")
    monkeypatch.setattr(moto_adapter, "CONTRACTS", (*moto_adapter.CONTRACTS, gone))
    monkeypatch.setattr(moto_adapter, "_checked", False)
    out = io.StringIO()

    # WHEN the demo runs
    status = run([*FAST, "--root", str(ROOT)], out=out)

    # THEN it exits 2 with one line: the installed version, what changed, the supported range, the fix
    lines = [line for line in out.getvalue().splitlines() if line.startswith("demo:")]
    assert status == 2
    assert len(lines) == 1
    assert "is not supported by callback-kit's simulator" in lines[0]
    assert "changed: callback-wait" in lines[0]
    assert moto_adapter.FIX_COMMAND in lines[0]
