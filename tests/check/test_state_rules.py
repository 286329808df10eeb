"""The rules about callback tasks (CK001-CK005, CK008, CK010, CK011, CK013), each positive and negative, in ASL."""

from __future__ import annotations

from typing import Any

import pytest

from tests.check.conftest import CheckAsl
from tests.check.helpers import codes, machine, task

JSONATA_TOKEN = "{% $states.context.Task.Token %}"


def jsonata_task(**fields: Any) -> dict[str, Any]:
    """The well-formed task, written in JSONata: Arguments instead of Parameters."""
    fields.setdefault("Arguments", {"QueueUrl": "https://sqs/q", "MessageBody": {"TaskToken": JSONATA_TOKEN}})
    return task(Parameters=None, **fields)


def test_a_well_formed_callback_task_has_no_findings(check_asl: CheckAsl) -> None:
    # GIVEN a callback task with a timeout, a heartbeat, a Catch and the token under TaskToken
    # WHEN it is checked, in JSONPath and in JSONata
    # THEN nothing is found
    assert check_asl(machine({"Ask": task()})) == []
    assert check_asl(machine({"Ask": jsonata_task()}, QueryLanguage="JSONata")) == []


def test_plain_tasks_are_not_callback_tasks(check_asl: CheckAsl) -> None:
    # GIVEN request-response and .sync tasks without timeouts, heartbeats or Catch
    states = {
        "Invoke": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Run"},
        "Run": {"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync", "End": True},
    }
    # WHEN checked  THEN none of the callback rules apply
    assert check_asl(machine(states)) == []


# -- CK001 -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "state",
    [
        task(TimeoutSeconds=None),
        task(TimeoutSeconds=None, Resource="arn:aws:states:us-east-1:123456789012:activity:check", Parameters=None),
        task(TimeoutSeconds=None, Resource="${AgeCheckActivityArn}", Parameters=None),
        task(TimeoutSeconds=None, Resource="arn:${AWS::Partition}:states:::sns:publish.waitForTaskToken"),
    ],
    ids=["waitForTaskToken", "activity-arn", "activity-placeholder", "partition-placeholder"],
)
def test_ck001_a_callback_task_without_timeout(check_asl: CheckAsl, state: dict[str, Any]) -> None:
    # GIVEN a callback task (token or activity) that sets no TimeoutSeconds
    findings = check_asl(machine({"Ask": state}))
    # THEN CK001 is an error on that state, and says how to fix it
    ck001 = [f for f in findings if f.code == "CK001"]
    assert len(ck001) == 1
    assert (ck001[0].where, ck001[0].level) == ("Ask", "error")
    assert "TimeoutSeconds" in ck001[0].fix


@pytest.mark.parametrize("fields", [{"TimeoutSeconds": 60}, {"TimeoutSeconds": None, "TimeoutSecondsPath": "$.t"}])
def test_ck001_timeout_or_timeout_path_satisfies_it(check_asl: CheckAsl, fields: dict[str, Any]) -> None:
    # GIVEN a callback task with TimeoutSeconds or TimeoutSecondsPath  THEN no CK001
    assert "CK001" not in codes(check_asl(machine({"Ask": task(**fields)})))


def test_ck001_names_the_machine_timeout_when_there_is_one(check_asl: CheckAsl) -> None:
    # GIVEN a state machine-level TimeoutSeconds but none on the task
    findings = check_asl(machine({"Ask": task(TimeoutSeconds=None)}, TimeoutSeconds=600))
    # THEN CK001 still holds (the whole execution fails, no Catch can help) and says so
    (ck001,) = [f for f in findings if f.code == "CK001"]
    assert "600" in ck001.message


# -- CK002 -----------------------------------------------------------------------------------------------------
def test_ck002_a_callback_task_without_heartbeat(check_asl: CheckAsl) -> None:
    # GIVEN a callback task without HeartbeatSeconds
    findings = check_asl(machine({"Ask": task(HeartbeatSeconds=None)}))
    # THEN a CK002 warning (only)
    assert [(f.code, f.level) for f in findings] == [("CK002", "warning")]


def test_ck002_heartbeat_path_satisfies_it(check_asl: CheckAsl) -> None:
    assert check_asl(machine({"Ask": task(HeartbeatSeconds=None, HeartbeatSecondsPath="$.beat")})) == []


def test_ck002_can_be_silenced_in_the_states_comment(check_asl: CheckAsl) -> None:
    # GIVEN a hand-off to a person (who cannot heartbeat), marked so in the Comment
    state = task(HeartbeatSeconds=None, Comment="E-mails an approver. callback-kit: ignore CK002")
    # THEN CK002 is not reported for that state
    assert check_asl(machine({"Ask": state})) == []


# -- CK003 -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"QueueUrl": "q", "MessageBody": {"Context.$": "$"}},
        {"QueueUrl": "q", "MessageBody": {"execution.$": "$$.Execution.Id", "TaskToken": "$$.Task.Token"}},
        None,
    ],
    ids=["input-only", "literal-not-path", "no-parameters"],
)
def test_ck003_the_token_is_never_passed(check_asl: CheckAsl, params: dict[str, Any] | None) -> None:
    # GIVEN a .waitForTaskToken task whose Parameters do not pass the token (a key without .$ is a literal)
    findings = check_asl(machine({"Ask": task(Parameters=params)}))
    # THEN CK003 is an error
    assert [(f.code, f.level) for f in findings] == [("CK003", "error")]


@pytest.mark.parametrize(
    "body",
    [
        {"ctx.$": "$$"},
        {"task.$": "$$.Task"},
        {"text.$": "States.Format('token={}', $$.Task.Token)"},
        {"nested": {"deep": {"TaskToken.$": "$$.Task.Token"}}},
    ],
    ids=["whole-context", "task-object", "intrinsic", "nested"],
)
def test_ck003_every_way_of_passing_the_token_counts(check_asl: CheckAsl, body: dict[str, Any]) -> None:
    # GIVEN the token passed whole, as the Task object, inside an intrinsic, or deep in the body
    findings = check_asl(machine({"Ask": task(Parameters={"QueueUrl": "q", "MessageBody": body})}))
    # THEN no CK003
    assert "CK003" not in codes(findings)


def test_ck003_jsonata(check_asl: CheckAsl) -> None:
    # GIVEN JSONata tasks: one passes nothing, others pass the token or the whole context in expressions
    missing = jsonata_task(Arguments={"QueueUrl": "q", "MessageBody": {"order": "{% $states.input %}"}})
    context = jsonata_task(Arguments={"QueueUrl": "q", "MessageBody": {"context": "{% $states.context %}"}})
    built = jsonata_task(Arguments="{% {'QueueUrl': 'q', 'MessageBody': {'t': $states.context.Task.Token}} %}")
    # WHEN checked  THEN only the first is CK003, and its fix is written in JSONata
    findings = check_asl(machine({"A": missing, "B": context, "C": built}, QueryLanguage="JSONata"))
    ck003 = [f for f in findings if f.code == "CK003"]
    assert [f.where for f in ck003] == ["A"]
    assert "$states.context.Task.Token" in ck003[0].fix


def test_ck003_does_not_apply_to_activities(check_asl: CheckAsl) -> None:
    # GIVEN an activity task: the worker gets its token from GetActivityTask, nothing needs passing
    state = task(Resource="arn:aws:states:us-east-1:123456789012:activity:a", Parameters={"x.$": "$.x"})
    assert "CK003" not in codes(check_asl(machine({"Ask": state})))


# -- CK004 (the state-only half: HeartbeatSeconds against TimeoutSeconds) ------------------------------------
@pytest.mark.parametrize("heartbeat", [3600, 7200])
def test_ck004_heartbeat_not_below_timeout(check_asl: CheckAsl, heartbeat: int) -> None:
    findings = check_asl(machine({"Ask": task(HeartbeatSeconds=heartbeat)}))
    assert [(f.code, f.level) for f in findings] == [("CK004", "error")]


def test_ck004_heartbeat_below_timeout_is_fine(check_asl: CheckAsl) -> None:
    assert check_asl(machine({"Ask": task(HeartbeatSeconds=3599)})) == []


def test_ck004_against_the_heartbeat_interval_given(check_asl: CheckAsl) -> None:
    # GIVEN HeartbeatSeconds 90 and an activity worker beating every 60 s (90 < 2x60)
    state = task(Resource="arn:aws:states:us-east-1:123456789012:activity:a", Parameters=None)
    findings = check_asl(machine({"Ask": state}), heartbeat_interval=60)
    # THEN CK004; with the default (no interval known) or a 30 s interval, nothing
    assert codes(findings) == ["CK004"]
    assert "60" in findings[0].message
    assert check_asl(machine({"Ask": state})) == []
    assert check_asl(machine({"Ask": state}), heartbeat_interval=30) == []


def test_ck004_jsonata_expressions_are_not_guessed(check_asl: CheckAsl) -> None:
    # GIVEN a JSONata heartbeat computed at run time  THEN it is not compared
    state = jsonata_task(HeartbeatSeconds="{% $states.input.beat %}")
    assert check_asl(machine({"Ask": state}, QueryLanguage="JSONata")) == []


# -- CK005 -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("catch", "missing"),
    [
        (None, "States.Timeout or task failures"),
        ([{"ErrorEquals": ["States.TaskFailed"], "Next": "Failed"}], "States.Timeout"),
        ([{"ErrorEquals": ["States.Timeout"], "Next": "Failed"}], "task failures"),
        ([{"ErrorEquals": ["States.HeartbeatTimeout", "Order.Rejected"], "Next": "Failed"}], "States.Timeout"),
    ],
)
def test_ck005_catch_must_cover_timeouts_and_failures(check_asl: CheckAsl, catch: Any, missing: str) -> None:
    findings = check_asl(machine({"Ask": task(Catch=catch)}))
    assert [(f.code, f.level) for f in findings] == [("CK005", "warning")]
    assert f"covers {missing}:" in findings[0].message


@pytest.mark.parametrize(
    "errors",
    [["States.ALL"], ["States.Timeout", "States.TaskFailed"], ["States.Timeout", "Order.Rejected"]],
)
def test_ck005_covering_catches(check_asl: CheckAsl, errors: list[str]) -> None:
    catch = [{"ErrorEquals": errors, "Next": "Failed"}]
    assert check_asl(machine({"Ask": task(Catch=catch)})) == []


def test_ck005_a_catch_on_the_enclosing_parallel_or_map_counts(check_asl: CheckAsl) -> None:
    # GIVEN a task with no Catch inside a Parallel that catches States.ALL
    branch = {"StartAt": "Ask", "States": {"Ask": task(Catch=None)}}
    parallel = {"Type": "Parallel", "Branches": [branch], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}]}
    # THEN the error is handled there: no CK005
    assert check_asl(machine({"Fan": {**parallel, "End": True}})) == []


# -- CK008 -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key", ["TaskToken", "taskToken", "tasktoken", "TASK_TOKEN", "task_token", "MyTaskToken", "token", "Token"]
)
def test_ck008_keys_a_worker_finds(check_asl: CheckAsl, key: str) -> None:
    body = {f"{key}.$": "$$.Task.Token"}
    assert check_asl(machine({"Ask": task(Parameters={"QueueUrl": "q", "MessageBody": body})})) == []


def test_ck008_the_whole_context_under_context_is_found(check_asl: CheckAsl) -> None:
    # GIVEN lambda:invoke passing "context.$": "$$" (the token at context.Task.Token)
    params = {"FunctionName": "f", "Payload": {"context.$": "$$", "order.$": "$.order"}}
    state = task(Resource="arn:aws:states:::lambda:invoke.waitForTaskToken", Parameters=params)
    assert check_asl(machine({"Ask": state})) == []


@pytest.mark.parametrize(
    ("resource", "params", "expected"),
    [
        (
            "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            {"QueueUrl": "q", "MessageBody": {"state_machine_token.$": "$$.Task.Token"}},
            "token_path='state_machine_token'",
        ),
        (
            "arn:aws:states:::lambda:invoke.waitForTaskToken",
            {"FunctionName": "f", "Payload": {"ctx.$": "$$"}},
            "token_path='ctx.Task.Token'",
        ),
        (
            "arn:aws:states:::events:putEvents.waitForTaskToken",
            {"Entries": [{"Source": "s", "DetailType": "d", "Detail": {"meta": {"TaskToken.$": "$$.Task.Token"}}}]},
            "token_path='meta.TaskToken'",
        ),
        (
            "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            {"QueueUrl": "q", "MessageBody.$": "$$.Task.Token"},
            "send an object",
        ),
        (
            "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            {
                "QueueUrl": "q",
                "MessageBody": {"x.$": "$"},
                "MessageAttributes": {"t": {"StringValue.$": "$$.Task.Token"}},
            },
            "put it in the MessageBody",
        ),
    ],
    ids=["sqs-odd-key", "lambda-odd-context", "eventbridge-nested", "bare-token-body", "in-attributes"],
)
def test_ck008_the_token_where_a_worker_does_not_look(
    check_asl: CheckAsl, resource: str, params: dict[str, Any], expected: str
) -> None:
    # GIVEN the token under a key, at a depth or outside the message, where callback-kit does not look by default
    findings = check_asl(machine({"Ask": task(Resource=resource, Parameters=params)}))
    # THEN a CK008 warning that says which token_path to set (or how to pass it instead)
    assert [(f.code, f.level) for f in findings] == [("CK008", "warning")]
    assert expected in findings[0].fix


def test_ck008_jsonata_keys(check_asl: CheckAsl) -> None:
    # GIVEN JSONata tasks: an expression object with a good key, and a literal object with an odd one
    good = jsonata_task(Arguments={"QueueUrl": "q", "MessageBody": "{% {'taskToken': $states.context.Task.Token} %}"})
    odd = jsonata_task(Arguments={"QueueUrl": "q", "MessageBody": {"approval": JSONATA_TOKEN}})
    findings = check_asl(machine({"Good": good, "Odd": odd}, QueryLanguage="JSONata"))
    # THEN only the odd one is reported
    assert [(f.code, f.where) for f in findings] == [("CK008", "Odd")]


def test_ck008_ignores_hand_offs_it_cannot_follow(check_asl: CheckAsl) -> None:
    # GIVEN the token parked in DynamoDB and passed to an ECS container: not read by a callback-kit Lambda worker
    ddb = task(
        Resource="arn:aws:states:::dynamodb:putItem.waitForTaskToken",
        Parameters={"TableName": "t", "Item": {"approvalToken": {"S.$": "$$.Task.Token"}}},
    )
    ecs = task(
        Resource="arn:aws:states:::ecs:runTask.waitForTaskToken",
        Parameters={
            "Overrides": {"ContainerOverrides": [{"Environment": [{"Name": "T", "Value.$": "$$.Task.Token"}]}]}
        },
    )
    assert check_asl(machine({"Park": {**ddb, "End": False, "Next": "Run"}, "Run": ecs})) == []


# -- CK010 -----------------------------------------------------------------------------------------------------
def map_state(inner: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"Type": "Map", "ItemProcessor": {"StartAt": "Ask", "States": {"Ask": inner}}, "End": True, **fields}


def test_ck010_inline_map_without_max_concurrency(check_asl: CheckAsl) -> None:
    findings = check_asl(machine({"Each": map_state(task())}))
    assert [(f.code, f.where, f.level) for f in findings] == [("CK010", "Each/Ask", "warning")]


@pytest.mark.parametrize("fields", [{"MaxConcurrency": 10}, {"MaxConcurrencyPath": "$.n"}])
def test_ck010_bounded_map(check_asl: CheckAsl, fields: dict[str, Any]) -> None:
    assert check_asl(machine({"Each": map_state(task(), **fields)})) == []


def test_ck010_legacy_iterator_and_nested_maps(check_asl: CheckAsl) -> None:
    # GIVEN an outer Map (legacy Iterator, bounded) holding an unbounded inner Map with a JSONata callback task
    inner_map = map_state(jsonata_task(), QueryLanguage="JSONata")
    outer = {"Type": "Map", "MaxConcurrency": 5, "Iterator": {"StartAt": "Inner", "States": {"Inner": inner_map}}}
    findings = check_asl(machine({"Outer": {**outer, "End": True}}))
    # THEN the inner task is found at its full path and reported for the unbounded inner Map
    assert [(f.code, f.where) for f in findings] == [("CK010", "Outer/Inner/Ask")]


def distributed(inner: dict[str, Any], execution: str = "STANDARD", **fields: Any) -> dict[str, Any]:
    state = map_state(inner, **fields)
    state["ItemProcessor"]["ProcessorConfig"] = {"Mode": "DISTRIBUTED", "ExecutionType": execution}
    return state


@pytest.mark.parametrize(("limit", "found"), [(None, True), (1000, True), (501, True), (500, False), (50, False)])
def test_ck010_distributed_map_against_the_send_task_quota(check_asl: CheckAsl, limit: int | None, found: bool) -> None:
    fields: dict[str, Any] = {"MaxConcurrency": limit} if limit is not None else {}
    findings = check_asl(machine({"Each": distributed(task(), **fields)}))
    assert (codes(findings) == ["CK010"]) is found
    if found:
        assert "distributed Map" in findings[0].message


def test_ck010_nested_concurrency_multiplies(check_asl: CheckAsl) -> None:
    # GIVEN a distributed Map of 100 whose children run an inline Map of 10: 1,000 open tasks
    inner = map_state(task(), MaxConcurrency=10)
    findings = check_asl(machine({"Each": distributed(inner, MaxConcurrency=100)}))
    assert codes(findings) == ["CK010"]
    assert "1000" in findings[0].message


# -- CK011 -----------------------------------------------------------------------------------------------------
def test_ck011_callback_in_express_distributed_map_children(check_asl: CheckAsl) -> None:
    findings = check_asl(machine({"Each": distributed(task(), "EXPRESS", MaxConcurrency=10)}))
    assert [(f.code, f.level) for f in findings] == [("CK011", "error")]


# -- CK013 -----------------------------------------------------------------------------------------------------
def container_task(**fields: Any) -> dict[str, Any]:
    """The AWS Developer Guide's ecs:runTask.waitForTaskToken example, with a timeout, a heartbeat and a Catch."""
    params = {
        "LaunchType": "FARGATE",
        "Cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/jobs",
        "TaskDefinition": "job-id",
        "Overrides": {
            "ContainerOverrides": [
                {"Name": "container-name", "Environment": [{"Name": "TASK_TOKEN", "Value.$": "$$.Task.Token"}]}
            ]
        },
    }
    return task(Resource="arn:aws:states:::ecs:runTask.waitForTaskToken", Parameters=params, **fields)


@pytest.mark.parametrize(
    ("field", "errors"),
    [
        ("Retry", ["Ecs.TaskFailedToStartException"]),
        ("Catch", ["Ecs.AmazonECSException", "States.ALL"]),
    ],
)
def test_ck013_ecs_errors_on_a_container_callback_task(check_asl: CheckAsl, field: str, errors: list[str]) -> None:
    # GIVEN a container task waiting for its token, whose Retry or Catch names an Ecs.* error
    rule: dict[str, Any] = {"ErrorEquals": errors}
    if field == "Catch":
        rule["Next"] = "Failed"
    state = container_task(**{field: [rule, *(container_task().get(field) or [])]})
    # WHEN checked
    findings = check_asl(machine({"Run job": state}))
    # THEN CK013 is an error on that state: the rule can never fire
    assert [(f.code, f.level, f.where) for f in findings] == [("CK013", "error", "Run job")]
    assert field in findings[0].message
    assert "CallbackKit.ContainerStopped" in findings[0].fix


def test_ck013_does_not_apply_to_sync_or_other_errors(check_asl: CheckAsl) -> None:
    # GIVEN the same Retry on an ecs:runTask.sync task (where ECS errors are raised), and a token task without it
    retry = [{"ErrorEquals": ["Ecs.TaskFailedToStartException"], "MaxAttempts": 2}]
    sync = {
        "Type": "Task",
        "Resource": "arn:aws:states:::ecs:runTask.sync",
        "Retry": retry,
        "Next": "Run job",
    }
    states = {"Sync job": sync, "Run job": container_task(Retry=[{"ErrorEquals": ["States.Timeout"]}])}
    # WHEN checked  THEN nothing is found (and CK012, which needs a template, is not reported for an ASL file)
    assert check_asl(machine(states)) == []
