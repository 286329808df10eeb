"""The in-memory Step Functions as a test author meets it: its constructor and how it reports answers."""

from __future__ import annotations

import inspect
import pydoc
import re

import callback_kit as ck
from callback_kit.testing import FakeStepFunctions, direct_event


def test_the_constructor_shows_only_its_settings() -> None:
    # GIVEN the fake's class
    # WHEN a user reads its signature or help()
    parameters = list(inspect.signature(FakeStepFunctions).parameters)
    text = re.sub(".\b", "", pydoc.render_doc(FakeStepFunctions))  # without the terminal's bold overstrikes

    # THEN only the settings a test may pass appear, none of the fake's private state
    assert parameters == ["latency", "sleep", "activity_poll_seconds", "clock"]
    shown = [line for line in text.splitlines() if "FakeStepFunctions(" in line or "__init__(self" in line]
    assert shown
    assert not any("_lock" in line or "_faults" in line for line in shown)


def test_outcome_decodes_the_cause_as_it_decodes_the_output() -> None:
    # GIVEN a task answered with success, one failed with TaskFailed, and one whose function raised
    sfn = FakeStepFunctions()
    ok, declined, crashed = sfn.open_task(), sfn.open_task(), sfn.open_task()

    def fn(payload: dict[str, str]) -> dict[str, bool]:
        if payload["kind"] == "declined":
            raise ck.TaskFailed("declined", error="Payment.Declined", cause="card declined")
        if payload["kind"] == "crashed":
            raise KeyError("sku")
        return {"approved": True}

    # WHEN each runs
    for token, kind in ((ok, "ok"), (declined, "declined"), (crashed, "crashed")):
        ck.process_event(direct_event(token, {"kind": kind}), None, fn, client=sfn, heartbeat_interval=0)

    # THEN JSON sent is decoded and text stays text: the output and the Lambda-style cause are Python values,
    # the business failure's cause is its message
    assert sfn.outcome(ok) == ("success", {"approved": True})
    assert sfn.outcome(declined) == ("failure", "Payment.Declined", "card declined")
    crashed_outcome = sfn.outcome(crashed)
    assert crashed_outcome is not None
    assert crashed_outcome[1] == "KeyError"
    assert crashed_outcome[2]["errorMessage"] == "'sku'"
    assert sfn.failures()[1] == ("KeyError", crashed_outcome[2])
