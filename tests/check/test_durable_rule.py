"""CK014: a task answered by a Lambda durable function, with a HeartbeatSeconds its waits can outlast."""

from __future__ import annotations

import json
from typing import Any

import pytest

from callback_kit.check.cfn_lint_rules import rule_id
from callback_kit.check.findings import RULES
from tests.check.conftest import CheckTemplate
from tests.check.helpers import codes, machine, task

INVOKE_TOKEN = "arn:aws:states:::lambda:invoke.waitForTaskToken"
APP = (
    "import callback_kit as ck\nfrom aws_durable_execution_sdk_python import durable_execution\n\n"
    "@durable_execution\n@ck.durable_task_handler\ndef handler(order, context):\n    return order\n"
)


def template(
    *,
    heartbeat: Any = 300,
    durable_config: dict[str, Any] | None = None,
    function_type: str = "AWS::Serverless::Function",
    comment: str | None = None,
) -> tuple[str, dict[str, str]]:
    """A SAM template whose state machine invokes Approver with waitForTaskToken, and its side files."""
    state = task(
        Resource=INVOKE_TOKEN,
        Parameters={"FunctionName": "${ApproverArn}", "Payload": {"TaskToken.$": "$$.Task.Token", "order.$": "$"}},
        TimeoutSeconds=7 * 86400,
        HeartbeatSeconds=heartbeat,
        Comment=comment,
    )
    props: dict[str, Any] = {"Handler": "app.handler", "CodeUri": "src/", "Runtime": "python3.13"}
    if function_type == "AWS::Lambda::Function":
        props = {"Handler": "app.handler", "Runtime": "python3.13", "Code": {"ZipFile": APP}, "Role": "arn:role"}
    if durable_config is not None:
        props["DurableConfig"] = durable_config
    body = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {
            "Machine": {
                "Type": "AWS::Serverless::StateMachine",
                "Properties": {
                    "DefinitionUri": "statemachine/approve.asl.json",
                    "DefinitionSubstitutions": {"ApproverArn": {"Fn::GetAtt": ["Approver", "Arn"]}},
                },
            },
            "Approver": {"Type": function_type, "Properties": props},
        },
    }
    files = {"statemachine/approve.asl.json": json.dumps(machine({"Approve": state})), "src/app.py": APP}
    return json.dumps(body), files


DAYS_3 = {"ExecutionTimeout": 3 * 86400, "RetentionPeriodInDays": 7}


@pytest.mark.parametrize("function_type", ["AWS::Serverless::Function", "AWS::Lambda::Function"])
def test_a_heartbeat_shorter_than_the_execution_timeout_is_an_error(
    check_template: CheckTemplate, function_type: str
) -> None:
    # GIVEN a durable function that may run three days, answering a task that wants a heartbeat every 5 minutes
    text, files = template(heartbeat=300, durable_config=DAYS_3, function_type=function_type)

    # WHEN the template is checked
    findings = check_template(text, files)

    # THEN CK014 says nobody beats while it is suspended, with both figures, on the state
    assert codes(findings) == ["CK014"]
    assert findings[0].level == "error"
    assert findings[0].where == "Approve"
    assert "HeartbeatSeconds 300" in findings[0].message
    assert "259200 s" in findings[0].message
    assert "drop HeartbeatSeconds" in findings[0].fix


def test_no_heartbeat_is_clean_and_not_asked_for(check_template: CheckTemplate) -> None:
    # GIVEN the same task without HeartbeatSeconds
    text, files = template(heartbeat=None, durable_config=DAYS_3)

    # WHEN it is checked / THEN nothing: not CK014, and not CK002 either, since no heartbeat could be sent
    assert check_template(text, files) == []


def test_a_heartbeat_at_least_the_execution_timeout_is_clean(check_template: CheckTemplate) -> None:
    # GIVEN a heartbeat no wait of the function can outlast
    text, files = template(heartbeat=3 * 86400, durable_config=DAYS_3)

    # WHEN it is checked / THEN nothing
    assert check_template(text, files) == []


@pytest.mark.parametrize(
    ("durable_config", "heartbeat", "said"),
    [
        ({"RetentionPeriodInDays": 7}, 300, "sets no ExecutionTimeout"),
        ({"ExecutionTimeout": {"Ref": "Unknown"}}, 3 * 86400, "sets no ExecutionTimeout"),
        (DAYS_3, "${Beat}", "set at run time"),
    ],
)
def test_a_bound_or_heartbeat_not_known_offline_is_flagged(
    check_template: CheckTemplate, durable_config: dict[str, Any], heartbeat: Any, said: str
) -> None:
    # GIVEN a durable worker whose ExecutionTimeout cannot be read, or a heartbeat given at run time
    text, files = template(heartbeat=heartbeat, durable_config=durable_config)
    if heartbeat == "${Beat}":
        asl = json.loads(files["statemachine/approve.asl.json"])
        del asl["States"]["Approve"]["HeartbeatSeconds"]
        asl["States"]["Approve"]["HeartbeatSecondsPath"] = "$.beat"
        files["statemachine/approve.asl.json"] = json.dumps(asl)

    # WHEN it is checked
    findings = check_template(text, files)

    # THEN CK014 still: a suspended function beats at no rate, and no bound shows the heartbeat safe
    assert codes(findings) == ["CK014"]
    assert said in findings[0].message


def test_a_plain_function_is_not_held_to_the_durable_rule(check_template: CheckTemplate) -> None:
    # GIVEN the same task answered by a function without DurableConfig
    text, files = template(heartbeat=300, durable_config=None)

    # WHEN it is checked / THEN no CK014 (a running worker beats)
    assert "CK014" not in codes(check_template(text, files))


def test_the_rule_can_be_silenced_on_the_state(check_template: CheckTemplate) -> None:
    # GIVEN a state whose author knows every wait is short
    comment = "every wait is minutes long: callback-kit: ignore CK014"
    text, files = template(heartbeat=300, durable_config=DAYS_3, comment=comment)

    # WHEN it is checked / THEN nothing
    assert check_template(text, files) == []


def test_ck014_has_its_cfn_lint_twin() -> None:
    # GIVEN the rule table / WHEN CK014's cfn-lint id is asked for / THEN it is E9114, like the other errors
    assert RULES["CK014"].level == "error"
    assert rule_id("CK014", "error") == "E9114"
