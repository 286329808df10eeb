"""JSONata definitions and ecs:runTask are refused when the state machine is created, never left to hang or fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from callback_kit.simulator import LocalStepFunctions, UnsupportedDefinitionError

pytestmark = pytest.mark.e2e

PASS = {"Type": "Pass", "End": True}


@pytest.fixture
def sim() -> Iterator[LocalStepFunctions]:
    with LocalStepFunctions() as simulator:
        yield simulator


def ecs_task() -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::ecs:runTask.waitForTaskToken",
        "Parameters": {"Cluster": "c", "TaskDefinition": "td"},
        "End": True,
    }


@pytest.mark.parametrize(
    ("definition", "named"),
    [
        ({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": PASS}}, "QueryLanguage is JSONata"),
        (
            {
                "StartAt": "Fan",
                "States": {
                    "Fan": {
                        "Type": "Parallel",
                        "Branches": [{"StartAt": "Deep", "States": {"Deep": {**PASS, "QueryLanguage": "JSONata"}}}],
                        "End": True,
                    }
                },
            },
            "state 'Deep' uses JSONata",
        ),
        (
            {
                "StartAt": "Each",
                "States": {
                    "Each": {
                        "Type": "Map",
                        "ItemProcessor": {"StartAt": "Container", "States": {"Container": ecs_task()}},
                        "End": True,
                    }
                },
            },
            "state 'Container' runs ecs:runTask.waitForTaskToken",
        ),
    ],
)
def test_unsupported_definitions_are_refused_at_creation_naming_the_state(
    sim: LocalStepFunctions, definition: dict[str, Any], named: str
) -> None:
    # GIVEN / WHEN the definition is created / THEN it is refused, saying where and why
    with pytest.raises(UnsupportedDefinitionError) as refused:
        sim.create_state_machine("refused", definition)
    assert named in str(refused.value)
    assert sim.sfn.list_state_machines()["stateMachines"] == []


def test_any_client_is_refused_on_create_and_update(sim: LocalStepFunctions) -> None:
    # GIVEN code under test that talks to Step Functions with its own client, and a valid JSONPath machine
    arn = sim.create_state_machine("valid", {"StartAt": "A", "States": {"A": PASS}})
    role = sim.role_arn()

    # WHEN it creates a machine with an ECS task, or updates the valid one to JSONata
    ecs = json.dumps({"StartAt": "R", "States": {"R": ecs_task()}})
    jsonata = json.dumps({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": PASS}})
    with pytest.raises(ClientError) as created:
        sim.sfn.create_state_machine(name="ecs", definition=ecs, roleArn=role)
    with pytest.raises(ClientError) as updated:
        sim.sfn.update_state_machine(stateMachineArn=arn, definition=jsonata)

    # THEN both are InvalidDefinition with the simulator's explanation; the valid machine still runs
    for error in (created.value, updated.value):
        assert error.response["Error"]["Code"] == "InvalidDefinition"
        assert "local simulator refuses" in error.response["Error"]["Message"]
    assert sim.run(arn, {"x": 1}, timeout=10)["status"] == "SUCCEEDED"
