"""Least privilege in template.yaml: no wildcard actions, SendTask* only where a callback task is answered, and no
function role that can do more than its trigger and its callbacks need.

Who answers callback tasks is read from the state machine itself: each ``.waitForTaskToken`` task (and each
activity task) names a queue, a bus, a function or an activity through ``DefinitionSubstitutions``; a worker is
the function invoked directly, the function triggered by that queue or bus, or whoever polls that activity.
Who answers a durable function's callbacks is read from the durable function: the queue its environment names is
where its submitter sends the callback id, and the function that queue triggers answers it, on that durable
function's executions only (``<its ARN>:*``: Lambda authorises them against the execution's qualified ARN).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SEND_TASK = frozenset({"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"})
LOGS = frozenset({"logs:CreateLogStream", "logs:PutLogEvents", "logs:CreateLogGroup"})
SQS_POLL = frozenset(
    {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"}
)
DESTINATION = {"SQS": "sqs:SendMessage", "SNS": "sns:Publish", "Lambda": "lambda:InvokeFunction"}
DESTINATION["EventBridge"] = "events:PutEvents"
IDEMPOTENCY_TABLE = frozenset({"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"})
DURABLE_CALLBACK = frozenset(
    {
        "lambda:SendDurableExecutionCallbackSuccess",
        "lambda:SendDurableExecutionCallbackFailure",
        "lambda:SendDurableExecutionCallbackHeartbeat",
    }
)
#: What a durable function needs on its own executions (AWSLambdaBasicDurableExecutionRolePolicy, scoped).
DURABLE_CHECKPOINT = frozenset({"lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"})
_EXECUTIONS_OF = re.compile(r"\$\{(\w+)\.Arn\}:\*")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _target(value: Any, template: dict[str, Any]) -> str:
    """The logical id a resource expression points at (``!Ref X``, ``!GetAtt X.Arn``, a state machine's !Sub ARN),
    ``X:*`` for the durable executions of function X (``!Sub ${X.Arn}:*``, or its ARN built from its FunctionName),
    or the expression itself as text."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            text = value["Fn::Sub"]
            executions = _EXECUTIONS_OF.fullmatch(text)
            if executions:
                return f"{executions.group(1)}:*"
            for logical_id, resource in template["Resources"].items():
                name = resource.get("Properties", {}).get("FunctionName")
                sub = name.get("Fn::Sub") if isinstance(name, dict) else None
                if sub and resource["Type"] == "AWS::Serverless::Function" and text.endswith(f":function:{sub}:*"):
                    return f"{logical_id}:*"
            for logical_id, resource in template["Resources"].items():
                name = resource.get("Properties", {}).get("Name")
                sub = name.get("Fn::Sub") if isinstance(name, dict) else None
                kind = {"AWS::Serverless::StateMachine": "stateMachine", "AWS::StepFunctions::Activity": "activity"}
                if sub and resource["Type"] in kind and text.endswith(f":{kind[resource['Type']]}:{sub}"):
                    return str(logical_id)
            return text
    return json.dumps(value)


def _callback_targets(template: dict[str, Any]) -> set[str]:
    """Logical ids of what the state machines' callback tasks send tokens to (queues, buses, functions, activities)."""
    found: set[str] = set()
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        props = resource["Properties"]
        definition = json.loads((ROOT / props["DefinitionUri"]).read_text())
        subs = {k: _target(v, template) for k, v in props.get("DefinitionSubstitutions", {}).items()}
        for state in _task_states(definition["States"]):
            resource_arn = str(state["Resource"])
            if not (resource_arn.endswith(".waitForTaskToken") or resource_arn.startswith("${")):
                continue  # a request-response task has no token to answer
            for name in re.findall(r"\$\{(\w+)\}", json.dumps(state)):
                if name in subs:
                    found.add(subs[name])
    return found


def _handoff_completers(template: dict[str, Any], callbacks: set[str]) -> set[str]:
    """Functions behind an API that a callback worker's environment names: they complete the tokens that worker
    hands off (``ck.hand_off()``, e.g. e-mailed approval links), so they answer callback tasks too."""
    apis: set[str] = set()
    for logical_id in callbacks:
        variables = template["Resources"].get(logical_id, {}).get("Properties", {}).get("Environment", {})
        for value in (variables.get("Variables") or {}).values():
            if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str):
                apis |= set(re.findall(r"\$\{(\w+)\}", value["Fn::Sub"]))
    return {
        logical_id
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in (resource["Properties"].get("Events") or {}).values()
        if event["Type"] == "Api"
        and _target(event.get("Properties", {}).get("RestApiId", {"Ref": "ServerlessRestApi"}), template) in apis
    }


def _durable_senders(template: dict[str, Any]) -> dict[str, set[str]]:
    """Queue logical id -> the durable functions (``DurableConfig``) whose environment names it: their submitters
    send callback ids there, for whoever reads the queue to answer."""
    found: dict[str, set[str]] = {}
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] != "AWS::Serverless::Function" or "DurableConfig" not in props:
            continue
        for value in (props.get("Environment", {}).get("Variables") or {}).values():
            target = _target(value, template)
            if template["Resources"].get(target, {}).get("Type") == "AWS::SQS::Queue":
                found.setdefault(target, set()).add(logical_id)
    return found


def _task_states(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in states.values():
        if state.get("Type") == "Task":
            yield state
        for branch in state.get("Branches", []):
            yield from _task_states(branch["States"])
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _task_states(state[key]["States"])


def _statements(policy_holder: dict[str, Any]) -> Iterator[dict[str, Any]]:
    props = policy_holder.get("Properties", {})
    for policy in props.get("Policies", []) or []:
        if isinstance(policy, dict):
            document = policy.get("PolicyDocument", policy)
            yield from _as_list(document.get("Statement", []))
    if "PolicyDocument" in props:
        yield from _as_list(props["PolicyDocument"].get("Statement", []))


def _grants(statements: Iterator[dict[str, Any]], template: dict[str, Any]) -> list[tuple[str, str]]:
    """(action, resource target) pairs the allow statements grant."""
    return [
        (action, _target(res, template))
        for st in statements
        if st.get("Effect") == "Allow"
        for action in _as_list(st.get("Action", []))
        for res in _as_list(st.get("Resource", []))
    ]


def _function_needs(
    logical_id: str, function: dict[str, Any], template: dict[str, Any], callbacks: set[str]
) -> set[tuple[str, str]]:
    """What a function's role may grant: its logs, its trigger, its failure destination, its callbacks."""
    props = function["Properties"]
    needs: set[tuple[str, str]] = set()
    log_group = props.get("LoggingConfig", {}).get("LogGroup")
    if log_group is not None:
        needs |= {(a, _target(log_group, template)) for a in LOGS}
    answers = logical_id in callbacks
    reaps = False
    if "DurableConfig" in props:
        needs |= {(a, f"{logical_id}:*") for a in DURABLE_CHECKPOINT}
    for event in (props.get("Events") or {}).values():
        event_props = event.get("Properties", {})
        if event["Type"] == "SQS":
            queue = _target(event_props["Queue"], template)
            needs |= {(a, queue) for a in SQS_POLL}
            answers |= queue in callbacks
            for durable in _durable_senders(template).get(queue, set()):
                needs |= {(a, f"{durable}:*") for a in DURABLE_CALLBACK}
        if event["Type"] in ("EventBridgeRule", "CloudWatchEvent"):
            answers |= _target(event_props.get("EventBusName"), template) in callbacks
            # The reaper: ECS tasks' stops, whose tokens are the state machine's container tasks (it fails them).
            reaps |= (event_props.get("Pattern") or {}).get("detail-type") == ["ECS Task State Change"]
    on_failure = props.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
    if on_failure:
        needs.add((DESTINATION[on_failure["Type"]], _target(on_failure["Destination"], template)))
    for value in (props.get("Environment", {}).get("Variables") or {}).values():
        target = _target(value, template)
        if template["Resources"].get(target, {}).get("Type") == "AWS::DynamoDB::Table":
            needs |= {(a, target) for a in IDEMPOTENCY_TABLE}  # callback_kit.idempotency's table
        if template["Resources"].get(target, {}).get("Type") == "AWS::SNS::Topic":
            needs.add(("sns:Publish", target))  # a topic it is told to publish to (a hand-off's notification)
        if template["Resources"].get(target, {}).get("Type") == "AWS::SQS::Queue" and "DurableConfig" in props:
            needs.add(("sqs:SendMessage", target))  # where its submitter sends the callback id
    machines = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::StateMachine"]
    if answers:
        needs |= {(a, m) for a in SEND_TASK for m in machines}
    elif reaps:
        needs |= {("states:SendTaskFailure", m) for m in machines}
    return needs


def violations(template: dict[str, Any]) -> list[str]:
    """Every least-privilege rule the template breaks, one readable line each."""
    problems: list[str] = []
    resources: dict[str, Any] = template["Resources"]
    callbacks = _callback_targets(template)
    callbacks |= _handoff_completers(template, callbacks)

    # 1. no wildcard actions (nor NotAction / NotResource, which grant everything else) anywhere
    for logical_id, resource in resources.items():
        for st in _statements(resource):
            for key in ("NotAction", "NotResource"):
                if key in st:
                    problems.append(f"{logical_id}: {key} grants everything it does not name")
            for action in _as_list(st.get("Action", [])):
                if "*" in str(action):
                    problems.append(f"{logical_id}: wildcard action {action}")
            if "*" in _as_list(st.get("Resource", [])):
                problems.append(f"{logical_id}: Resource '*' for {st.get('Action')}")

    # 2. SendTask* only for whoever answers a callback task; 3. a function role holds no more than it needs
    roles_of: dict[str, list[str]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::Function":
            role = resource["Properties"].get("Role")
            if role is not None:
                roles_of.setdefault(_target(role, template), []).append(logical_id)
            elif any(not isinstance(p, dict) for p in resource["Properties"].get("Policies", []) or []):
                problems.append(f"{logical_id}: SAM policy templates or managed policies cannot be checked")
    for logical_id, resource in resources.items():
        kind, props = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::Serverless::Function" and "Role" in props:
            continue  # checked through its role
        grants = _grants(_statements(resource), template)
        sends = {a for a, _ in grants if a in SEND_TASK}
        if kind == "AWS::IAM::ManagedPolicy":
            polled = {r for a, r in grants if a == "states:GetActivityTask"}
            if sends and not polled & callbacks:
                problems.append(f"{logical_id}: grants SendTask* but polls no activity of a callback task")
            continue
        functions = [logical_id] if kind == "AWS::Serverless::Function" else roles_of.get(logical_id, [])
        if not functions:
            if sends:
                problems.append(f"{logical_id}: grants SendTask* to a principal that runs no callback worker")
            continue
        needed: set[tuple[str, str]] = set()
        for f in functions:
            needed |= _function_needs(f, resources[f], template, callbacks)
        answers = any(a in SEND_TASK for a, _ in needed)
        if sends and not answers:
            problems.append(f"{logical_id}: grants SendTask* to {functions}, which answer no callback task")
        if answers and not sends:
            problems.append(f"{logical_id}: {functions} answer callback tasks but may not call SendTask*")
        granted = set(grants)
        for kind, actions in (
            ("durable callbacks", DURABLE_CALLBACK),
            ("their durable executions", DURABLE_CHECKPOINT),
        ):
            missing = {(a, r) for a, r in needed if a in actions} - granted
            if missing:
                problems.append(f"{logical_id}: {functions} may not act on {kind}: {sorted(missing)}")
        for action, target in grants:
            if (action, target) not in needed and not (action in SEND_TASK and not answers):
                problems.append(f"{logical_id}: {action} on {target} is more than {functions} need")
    return problems


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    if not TEMPLATE.exists():  # pragma: no cover - the SAM app is part of the repository
        pytest.fail("template.yaml is missing")
    return load_template(TEMPLATE)


def test_the_template_grants_least_privilege(template: dict[str, Any]) -> None:
    # GIVEN the SAM template and its state machine / WHEN checked / THEN no rule is broken
    assert violations(template) == []


def test_every_callback_target_is_found(template: dict[str, Any]) -> None:
    # GIVEN the state machine's callback tasks / WHEN their targets are resolved / THEN the checker sees all four
    targets = _callback_targets(template)
    assert targets == {"OrderQueue", "NotifyBus", "AgeCheckFunction", "AgeCheckActivity", "RequestApprovalFunction"}
    # AND the approval API, which completes what RequestApprovalFunction hands off, is found through its environment
    assert _handoff_completers(template, targets) == {"ApprovalDecisionFunction"}


def test_the_durable_functions_queue_is_found(template: dict[str, Any]) -> None:
    # GIVEN the durable function / WHEN the queues durable submitters send to are read / THEN it is OrderQueue
    assert _durable_senders(template) == {"OrderQueue": {"DurableOrderFunction"}}


def _statement(resource: dict[str, Any]) -> list[dict[str, Any]]:
    policy = resource["Properties"]["Policies"][0]
    statements: list[dict[str, Any]] = policy.get("PolicyDocument", policy)["Statement"]
    return statements


def _sid(template: dict[str, Any], role: str, sid: str) -> dict[str, Any]:
    (statement,) = [s for s in _statement(template["Resources"][role]) if s.get("Sid") == sid]
    return statement


MUTATIONS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "wildcard-action": (
        lambda t: _statement(t["Resources"]["OrderCheckRole"]).append(
            {"Effect": "Allow", "Action": "sqs:*", "Resource": {"Fn::GetAtt": ["OrderQueue", "Arn"]}}
        ),
        "wildcard action sqs:*",
    ),
    "wildcard-resource": (
        lambda t: _statement(t["Resources"]["AgeCheckRole"]).append(
            {"Effect": "Allow", "Action": "states:SendTaskSuccess", "Resource": "*"}
        ),
        "Resource '*'",
    ),
    "send-task-on-the-state-machine-role": (
        lambda t: _statement(t["Resources"]["CallbacksStateMachine"]).append(
            {"Effect": "Allow", "Action": list(SEND_TASK), "Resource": {"Ref": "CallbacksStateMachine"}}
        ),
        "runs no callback worker",
    ),
    "more-than-the-trigger-needs": (
        lambda t: _statement(t["Resources"]["OrderCheckRole"]).append(
            {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["OrderQueue", "Arn"]}}
        ),
        "sqs:SendMessage on OrderQueue is more than",
    ),
    "another-queue": (
        lambda t: _statement(t["Resources"]["NotifyRole"]).append(
            {"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": {"Fn::GetAtt": ["OrderQueue", "Arn"]}}
        ),
        "sqs:ReceiveMessage on OrderQueue is more than",
    ),
    "worker-that-cannot-answer": (
        lambda t: _statement(t["Resources"]["AgeCheckRole"]).pop(0),
        "may not call SendTask*",
    ),
    "reaper-that-may-succeed-tasks": (
        lambda t: _statement(t["Resources"]["ReaperRole"])[0].update(
            Action=["states:SendTaskFailure", "states:SendTaskSuccess"]
        ),
        "states:SendTaskSuccess on CallbacksStateMachine is more than ['ReaperFunction'] need",
    ),
    "send-task-to-a-non-worker": (
        lambda t: t["Resources"]["OrderCheckFunction"]["Properties"].pop("Events"),
        "answer no callback task",
    ),
    "durable-callbacks-for-a-worker-of-another-queue": (
        lambda t: _statement(t["Resources"]["NotifyRole"]).append(
            {
                "Effect": "Allow",
                "Action": "lambda:SendDurableExecutionCallbackSuccess",
                "Resource": {"Fn::Sub": "${DurableOrderFunction.Arn}:*"},
            }
        ),
        "lambda:SendDurableExecutionCallbackSuccess on DurableOrderFunction:* is more than ['NotifyFunction'] need",
    ),
    "durable-callbacks-on-the-bare-function-arn": (
        lambda t: _sid(t, "OrderCheckRole", "AnswerTheDurableOrdersCallbacks").update(
            Resource={"Fn::GetAtt": ["DurableOrderFunction", "Arn"]}
        ),
        "may not act on durable callbacks",
    ),
    "worker-that-cannot-answer-durable-callbacks": (
        lambda t: _statement(t["Resources"]["OrderCheckRole"]).remove(
            _sid(t, "OrderCheckRole", "AnswerTheDurableOrdersCallbacks")
        ),
        "may not act on durable callbacks",
    ),
    "durable-function-that-cannot-checkpoint": (
        lambda t: _statement(t["Resources"]["DurableOrderRole"]).remove(
            _sid(t, "DurableOrderRole", "CheckpointItsOwnExecutions")
        ),
        "may not act on their durable executions",
    ),
    "durable-function-checkpointing-another-function": (
        lambda t: _sid(t, "DurableOrderRole", "CheckpointItsOwnExecutions").update(
            Resource={"Fn::Sub": "${AgeCheckFunction.Arn}:*"}
        ),
        "lambda:CheckpointDurableExecution on AgeCheckFunction:* is more than",
    ),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS), ids=list(MUTATIONS))
def test_the_checker_catches_each_kind_of_excess(template: dict[str, Any], mutation: str) -> None:
    # GIVEN the template with one excess grant (or one missing) added
    mutate, expected = MUTATIONS[mutation]
    broken = copy.deepcopy(template)
    mutate(broken)

    # WHEN it is checked
    problems = violations(broken)

    # THEN that excess is reported
    assert any(expected in p for p in problems), problems
