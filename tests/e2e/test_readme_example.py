"""The README's example of the ``local_sfn`` fixture, kept here verbatim so that it cannot rot."""

from __future__ import annotations

from typing import Any

import pytest

import callback_kit as ck
from callback_kit.simulator import LocalStepFunctions

pytestmark = pytest.mark.e2e


def test_order_state_machine(local_sfn: LocalStepFunctions) -> None:
    queue = local_sfn.create_queue("orders")
    definition: dict[str, Any] = {
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue.url,
                    "MessageBody": {"TaskToken.$": "$$.Task.Token", "total.$": "$.total"},
                },
                "HeartbeatSeconds": 10,
                "TimeoutSeconds": 60,
                "End": True,
            }
        },
    }

    @ck.callback_handler(heartbeat_interval=1)
    def check(order: dict[str, Any]) -> dict[str, Any]:
        return {"approved": order["total"] < 100}

    local_sfn.route_sqs(queue, check)
    arn = local_sfn.create_state_machine("orders", definition)  # a dict, a JSON string or an .asl.json path
    result = local_sfn.run(arn, {"total": 12}, timeout=15)  # delivers callbacks in the background until the end
    assert (result["status"], result["output"]) == ("SUCCEEDED", {"approved": True})


def test_the_readme_shows_this_very_test() -> None:
    import inspect
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("def test_order_state_machine(local_sfn)") :]
    block = block[: block.index("```")].rstrip()
    # The README leaves out the type annotations that mypy --strict asks of the test.
    shown = (
        block.replace("(local_sfn)", "(local_sfn: LocalStepFunctions)")
        .replace("    definition = {", "    definition: dict[str, Any] = {")
        .replace("(order: dict) -> dict:", "(order: dict[str, Any]) -> dict[str, Any]:")
    )
    assert inspect.getsource(test_order_state_machine).rstrip() == shown
