"""What ``template.yaml``, ``statemachine/*.asl.json`` and ``events/`` promise, checked without AWS or SAM.

``.ci/sam-checks`` runs SAM's and cfn-lint's own validation and statelint; these tests check the project's rules
those tools do not know: the SQS worker's redrive and visibility, batch item failures, async retries and DLQ of
the EventBridge worker, least-privilege IAM, HeartbeatSeconds against the heartbeat interval, and that every
``events/`` file the docs name exists and has the shape Lambda delivers.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"
SEND_TASK_ACTIONS = {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"}
DURABLE_CALLBACK_ACTIONS = {
    "lambda:SendDurableExecutionCallbackSuccess",
    "lambda:SendDurableExecutionCallbackFailure",
    "lambda:SendDurableExecutionCallbackHeartbeat",
}
DURABLE_CHECKPOINT_ACTIONS = {"lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"}
CALLBACK_RESOURCES = (
    "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
    "arn:aws:states:::events:putEvents.waitForTaskToken",
    "arn:aws:states:::lambda:invoke.waitForTaskToken",
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Logical id -> properties of every resource of type ``kind``; functions merged over Globals.Function."""
    defaults = template.get("Globals", {}).get("Function", {}) if kind == "AWS::Serverless::Function" else {}
    return {
        name: {**defaults, **resource.get("Properties", {})}
        for name, resource in template["Resources"].items()
        if resource["Type"] == kind
    }


def ref_target(value: Any) -> str:
    """The logical id behind ``!Ref X`` or ``!GetAtt X.Attr`` (or the text of anything else, e.g. a ``!Sub``)."""
    if "Ref" in value:
        return str(value["Ref"])
    if "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    return json.dumps(value)


def handler_source(props: dict[str, Any]) -> str:
    """The text of a function's handler module (``CodeUri/module.py``)."""
    module = str(props["Handler"]).rsplit(".", 1)[0].replace(".", "/")
    return (ROOT / str(props["CodeUri"]) / f"{module}.py").read_text(encoding="utf-8")


def hands_off(template: dict[str, Any], function: str) -> bool:
    """Whether a function's handler hands its task's token off (``ck.hand_off()``): someone else completes it."""
    return "ck.hand_off()" in handler_source(resources_of(template, "AWS::Serverless::Function")[function])


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement", [])
    return list(found) if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner logical id, statement) for every inline, managed and SAM ``Policies`` statement."""
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for policy in props.get("Policies", []):
            if isinstance(policy, dict) and "PolicyDocument" in policy:
                policy = policy["PolicyDocument"]
            if isinstance(policy, dict):
                for statement in statements(policy):
                    yield name, statement
        if "PolicyDocument" in props:
            for statement in statements(props["PolicyDocument"]):
                yield name, statement


def role_actions(template: dict[str, Any], role: str) -> set[str]:
    return {
        action
        for owner, statement in policy_statements(template)
        if owner == role
        for action in as_list(statement["Action"])
    }


# ---------------------------------------------------------------------------------------------------------------
# The template
# ---------------------------------------------------------------------------------------------------------------
def test_is_a_sam_template_on_a_current_python(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    functions = resources_of(template, "AWS::Serverless::Function")
    assert len(functions) == 7
    for name, props in functions.items():
        assert props["Runtime"] in {"python3.12", "python3.13"}, name
        assert props["Layers"], f"{name} has no callback_kit layer"
        code = ROOT / props["CodeUri"] / (props["Handler"].rsplit(".", 1)[0].replace(".", "/") + ".py")
        assert code.is_file(), f"{name}'s handler module {code} does not exist"


def test_sqs_worker_has_dlq_redrive_visibility_and_batch_item_failures(template: dict[str, Any]) -> None:
    queues = resources_of(template, "AWS::SQS::Queue")
    sqs_workers = 0
    for name, props in resources_of(template, "AWS::Serverless::Function").items():
        for event in props.get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            sqs_workers += 1
            queue = queues[ref_target(event["Properties"]["Queue"])]
            assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
            redrive = queue["RedrivePolicy"]
            assert ref_target(redrive["deadLetterTargetArn"]) in queues
            assert int(redrive["maxReceiveCount"]) >= 5
            assert int(queue["VisibilityTimeout"]) >= 6 * int(props["Timeout"]), name
    assert sqs_workers == 1


def test_eventbridge_worker_has_a_rule_async_retries_and_an_on_failure_dlq(template: dict[str, Any]) -> None:
    buses = resources_of(template, "AWS::Events::EventBus")
    queues = resources_of(template, "AWS::SQS::Queue")
    eventbridge_workers = 0
    for name, props in resources_of(template, "AWS::Serverless::Function").items():
        rules = [e for e in props.get("Events", {}).values() if e["Type"] == "EventBridgeRule"]
        if not rules:
            continue
        eventbridge_workers += 1
        (rule,) = rules
        pattern = rule["Properties"]["Pattern"]
        if pattern["source"] == ["aws.ecs"]:
            assert "EventBusName" not in rule["Properties"], "AWS services send their events to the default bus"
        else:
            assert ref_target(rule["Properties"]["EventBusName"]) in buses
        assert {"source", "detail-type"} <= pattern.keys()
        invoke = props["EventInvokeConfig"]
        assert 0 <= int(invoke["MaximumRetryAttempts"]) <= 2
        on_failure = invoke["DestinationConfig"]["OnFailure"]
        assert on_failure["Type"] == "SQS"
        assert ref_target(on_failure["Destination"]) in queues, name
    assert eventbridge_workers == 2


def test_reaper_hears_only_stopped_tasks_step_functions_started_on_the_apps_cluster(template: dict[str, Any]) -> None:
    # GIVEN the reaper function (the one whose handler is callback_kit.reaper's)
    functions = resources_of(template, "AWS::Serverless::Function")
    (props,) = [p for p in functions.values() if "callback_kit.reaper" in handler_source(p)]
    (rule,) = props["Events"].values()
    # THEN its rule takes ECS Task State Change events of the cluster parameter, STOPPED, started by Step Functions
    assert rule["Properties"]["Pattern"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "clusterArn": [{"Ref": "ContainerClusterArn"}],
            "lastStatus": ["STOPPED"],
            "startedBy": ["AWS Step Functions"],
        },
    }
    # AND it reads the token from the variable callback-kit run reads it from by default
    from callback_kit.container import DEFAULT_TOKEN_ENV
    from callback_kit.reaper import ENV_TOKEN_ENV

    assert props["Environment"]["Variables"][ENV_TOKEN_ENV] == DEFAULT_TOKEN_ENV
    # AND with no cluster given, none of its resources is created
    reaper = {name for name, r in template["Resources"].items() if r.get("Condition") == "HasContainerCluster"}
    assert {
        "ReaperFunction",
        "ReaperRole",
        "ReaperLogGroup",
        "ReaperDeadLetterQueue",
        "ReaperDeadLetterQueueAlarm",
    } == reaper
    assert template["Parameters"]["ContainerClusterArn"]["Default"] == ""


def durable_queues(template: dict[str, Any]) -> dict[str, str]:
    """Queue logical id -> the durable function (``DurableConfig``) whose environment names it (its submitter's)."""
    return {
        ref_target(value): name
        for name, props in resources_of(template, "AWS::Serverless::Function").items()
        if "DurableConfig" in props
        for value in props["Environment"]["Variables"].values()
        if isinstance(value, dict) and template["Resources"][ref_target(value)]["Type"] == "AWS::SQS::Queue"
    }


def test_the_durable_function_waits_for_the_order_check_worker_through_its_queue(template: dict[str, Any]) -> None:
    # GIVEN the durable function and the SQS worker of the queue its submitter sends to
    functions = resources_of(template, "AWS::Serverless::Function")
    (durable,) = [name for name, props in functions.items() if "DurableConfig" in props]
    props = functions[durable]
    ((queue, sender),) = durable_queues(template).items()
    (worker,) = [
        name
        for name, p in functions.items()
        for event in p.get("Events", {}).values()
        if event["Type"] == "SQS" and ref_target(event["Properties"]["Queue"]) == queue
    ]
    # THEN it is the state machine's CheckOrder queue, read by the one order-check worker
    (machine,) = resources_of(template, "AWS::Serverless::StateMachine").values()
    assert sender == durable
    assert ref_target(machine["DefinitionSubstitutions"]["OrderQueueUrl"]) == queue
    assert functions[worker]["Handler"] == "order_check.handler"
    # AND its handler waits for a callback (a timeout, a heartbeat timeout) and sends the id as the worker reads it
    source = handler_source(props)
    assert "wait_for_callback(" in source
    assert "WaitForCallbackConfig(timeout=" in source
    assert "heartbeat_timeout=" in source
    assert '{"callbackId": callback_id, "order":' in source
    assert 'payload_path="order"' in handler_source(functions[worker])
    # AND its DurableConfig bounds the execution and keeps its history for a while
    config = props["DurableConfig"]
    assert 0 < int(config["ExecutionTimeout"]) <= 31_622_400
    assert 1 <= int(config["RetentionPeriodInDays"]) <= 90
    # AND it gets the durable SDK, which the Lambda runtime lacks, from a layer built from layers/durable_sdk
    layers = [template["Resources"][ref_target(layer)] for layer in props["Layers"]]
    (sdk,) = [layer for layer in layers if "durable" in layer["Properties"]["ContentUri"]]
    assert sdk["Metadata"]["BuildMethod"] == "makefile"
    requirements = (ROOT / sdk["Properties"]["ContentUri"] / "requirements.txt").read_text(encoding="utf-8")
    assert "aws-durable-execution-sdk-python" in requirements
    assert props["Runtime"] in sdk["Properties"]["CompatibleRuntimes"]


def test_the_durable_functions_timeouts_fit_the_queue_and_the_heartbeat_interval(template: dict[str, Any]) -> None:
    # GIVEN the durable handler's callback timeouts (its module needs the durable SDK: Python 3.11 and later)
    pytest.importorskip("aws_durable_execution_sdk_python", reason="the durable SDK needs Python >= 3.11")
    from demo.deploy import load_code

    functions = resources_of(template, "AWS::Serverless::Function")
    (props,) = [p for p in functions.values() if "DurableConfig" in p]
    module = load_code(ROOT / props["CodeUri"], props["Handler"].rsplit(".", 1)[0] + ".CALLBACK_TIMEOUT")
    heartbeat = load_code(ROOT / props["CodeUri"], props["Handler"].rsplit(".", 1)[0] + ".HEARTBEAT_TIMEOUT")
    (queue,) = durable_queues(template)
    queue_props = resources_of(template, "AWS::SQS::Queue")[queue]
    redelivered_for = int(queue_props["VisibilityTimeout"]) * int(queue_props["RedrivePolicy"]["maxReceiveCount"])
    # THEN the callback waits as long as the queue may redeliver its message, and times out before the execution
    assert redelivered_for <= module.to_seconds() < int(props["DurableConfig"]["ExecutionTimeout"])
    # AND a heartbeat timeout leaves room for two lost beats at the workers' longest interval, as HeartbeatSeconds does
    assert heartbeat.to_seconds() >= 3 * int(template["Parameters"]["HeartbeatInterval"]["MaxValue"])


def test_parameters_reach_every_function_as_environment(template: dict[str, Any]) -> None:
    assert {"HeartbeatInterval", "LogLevel"} <= template["Parameters"].keys()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["CALLBACK_KIT_HEARTBEAT_INTERVAL"] == {"Ref": "HeartbeatInterval"}
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    for name, props in resources_of(template, "AWS::Serverless::Function").items():
        assert props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"], name


def test_the_callback_workers_write_metrics_that_an_alarm_watches(template: dict[str, Any]) -> None:
    # GIVEN every function made with callback_handler (the hand-off one included), and the handed-back alarm
    functions = resources_of(template, "AWS::Serverless::Function")
    workers = {
        props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for props in functions.values()
        if "ck.callback_handler(" in handler_source(props)
    }
    assert workers
    [alarm] = [
        props
        for props in resources_of(template, "AWS::CloudWatch::Alarm").values()
        if any(
            m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "TaskHandedBack"
            for m in props.get("Metrics", [])
        )
    ]
    # THEN each worker turns metrics on, and the alarm sums TaskHandedBack over every one of them
    for props in functions.values():
        if "ck.callback_handler(" in handler_source(props):
            assert "metrics=metrics" in handler_source(props)
    watched = {
        next(d["Value"] for d in m["MetricStat"]["Metric"]["Dimensions"] if d["Name"] == "service")
        for m in alarm["Metrics"]
        if "MetricStat" in m
    }
    assert watched == workers
    assert template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]


def test_every_dead_letter_queue_has_an_alarm(template: dict[str, Any]) -> None:
    # GIVEN the queues some redrive policy or on-failure destination sends to (named *DeadLetterQueue)
    queues = {name for name in resources_of(template, "AWS::SQS::Queue") if name.endswith("DeadLetterQueue")}
    # WHEN the alarms are read
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    watched = {
        ref_target(d["Value"]) for a in alarms if a.get("Namespace") == "AWS/SQS" for d in a.get("Dimensions", [])
    }
    # THEN each one's depth is watched
    assert queues
    assert queues == watched


def test_outputs_name_the_state_machine_queue_bus_and_activity(template: dict[str, Any]) -> None:
    targets = {ref_target(output["Value"]) for output in template["Outputs"].values()}
    kinds = {template["Resources"][target]["Type"] for target in targets if target in template["Resources"]}
    assert {
        "AWS::Serverless::StateMachine",
        "AWS::SQS::Queue",
        "AWS::Events::EventBus",
        "AWS::StepFunctions::Activity",
        "AWS::SNS::Topic",
    } <= kinds


# ---------------------------------------------------------------------------------------------------------------
# IAM
# ---------------------------------------------------------------------------------------------------------------
def test_no_wildcard_actions_or_resources(template: dict[str, Any]) -> None:
    for owner, statement in policy_statements(template):
        assert statement["Effect"] == "Allow", owner
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{owner}: wildcard action {action}"
        for resource in as_list(statement["Resource"]):
            assert resource != "*", f"{owner}: Resource '*' (scope it, or document why it cannot be)"


def test_functions_may_only_answer_tasks_and_serve_their_trigger(template: dict[str, Any]) -> None:
    allowed_for_trigger = {
        "SQS": {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"},
        "EventBridgeRule": {"sqs:SendMessage"},  # the on-failure destination is written with the function's role
        "Api": set(),  # API Gateway's permission to invoke is the function's resource policy, not its role
    }
    logs = {"logs:CreateLogStream", "logs:PutLogEvents"}
    durable = durable_queues(template)
    for name, props in resources_of(template, "AWS::Serverless::Function").items():
        role = ref_target(props["Role"])
        if "DurableConfig" in props:
            # A durable function answers no task: it checkpoints and sends its callback id to its worker's queue.
            actions = role_actions(template, role)
            assert actions <= DURABLE_CHECKPOINT_ACTIONS | logs | {"sqs:SendMessage"}, name
            assert actions >= DURABLE_CHECKPOINT_ACTIONS | {"sqs:SendMessage"}, name
            continue
        allowed = SEND_TASK_ACTIONS | logs
        events = props.get("Events", {}).values()
        for event in events:
            allowed |= allowed_for_trigger[event["Type"]]
        reads_durable_callbacks = any(
            event["Type"] == "SQS" and ref_target(event["Properties"]["Queue"]) in durable for event in events
        )
        if reads_durable_callbacks:
            allowed |= DURABLE_CALLBACK_ACTIONS
            assert role_actions(template, role) >= DURABLE_CALLBACK_ACTIONS, f"{name} cannot answer its callbacks"
        env = props.get("Environment", {}).get("Variables", {}).values()
        named = {ref_target(v) for v in env if isinstance(v, dict)}
        if any(template["Resources"].get(t, {}).get("Type") == "AWS::SNS::Topic" for t in named):
            allowed |= {"sns:Publish"}  # a topic named in its environment: the notifier's approval requests
        actions = role_actions(template, role)
        assert actions <= allowed, f"{name}: unexpected {actions - allowed}"
        if any(event["Type"] == "Api" for event in events):
            # The approval API completes handed-off tasks: success or failure, never a heartbeat.
            assert actions & SEND_TASK_ACTIONS == {"states:SendTaskSuccess", "states:SendTaskFailure"}, name
        elif "callback_kit.reaper" in handler_source(props):
            # The reaper only fails the tasks of containers that stopped unanswered.
            assert actions & SEND_TASK_ACTIONS == {"states:SendTaskFailure"}, name
        else:
            assert actions >= SEND_TASK_ACTIONS, name


def test_send_task_permissions_name_this_state_machine(template: dict[str, Any]) -> None:
    (machine,) = resources_of(template, "AWS::Serverless::StateMachine").values()
    name = machine["Name"]["Fn::Sub"]
    for owner, statement in policy_statements(template):
        if set(as_list(statement["Action"])) & SEND_TASK_ACTIONS:
            subs = [r["Fn::Sub"] for r in as_list(statement["Resource"]) if isinstance(r, dict) and "Fn::Sub" in r]
            assert any(sub.endswith(f":stateMachine:{name}") for sub in subs), owner


def test_durable_permissions_name_the_durable_functions_executions(template: dict[str, Any]) -> None:
    # GIVEN the durable function (its name, which its own role must build: it cannot !GetAtt what refers to it)
    functions = resources_of(template, "AWS::Serverless::Function")
    ((durable, props),) = [(n, p) for n, p in functions.items() if "DurableConfig" in p]
    name = props["FunctionName"]["Fn::Sub"]
    executions = {
        f"${{{durable}.Arn}}:*",
        f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{name}:*",
    }
    # WHEN every statement that acts on durable executions is read
    durable_actions = DURABLE_CALLBACK_ACTIONS | DURABLE_CHECKPOINT_ACTIONS
    found = [(o, s) for o, s in policy_statements(template) if set(as_list(s["Action"])) & durable_actions]
    # THEN each names that function's executions, qualified (":*"): the bare function ARN never matches one
    assert {owner for owner, _ in found} == {"OrderCheckRole", ref_target(props["Role"])}
    for owner, statement in found:
        for resource in as_list(statement["Resource"]):
            assert resource["Fn::Sub"] in executions, owner


def test_state_machine_may_only_send_to_its_queue_bus_and_function(template: dict[str, Any]) -> None:
    (machine,) = resources_of(template, "AWS::Serverless::StateMachine").values()
    granted = {
        (action, ref_target(resource))
        for policy in machine["Policies"]
        for statement in statements(policy)
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    kinds = {(action, template["Resources"][target]["Type"]) for action, target in granted}
    assert kinds == {
        ("sqs:SendMessage", "AWS::SQS::Queue"),
        ("events:PutEvents", "AWS::Events::EventBus"),
        ("lambda:InvokeFunction", "AWS::Serverless::Function"),
    }
    substituted = {ref_target(v) for v in machine["DefinitionSubstitutions"].values()}
    assert {target for _, target in granted} <= substituted


# ---------------------------------------------------------------------------------------------------------------
# The state machine definition
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def definition(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = resources_of(template, "AWS::Serverless::StateMachine").values()
    text = (ROOT / machine["DefinitionUri"]).read_text(encoding="utf-8")
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    assert placeholders == set(machine["DefinitionSubstitutions"]), "substitutions and placeholders differ"
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def test_definition_is_jsonpath_so_moto_can_run_it(definition: dict[str, Any]) -> None:
    assert definition.get("QueryLanguage", "JSONPath") == "JSONPath"
    for name, state in definition["States"].items():
        assert state.get("QueryLanguage", "JSONPath") == "JSONPath", name


def test_every_callback_task_heartbeats_times_out_and_catches(
    template: dict[str, Any], definition: dict[str, Any]
) -> None:
    states = definition["States"]
    max_interval = int(template["Parameters"]["HeartbeatInterval"]["MaxValue"])
    callback_tasks = {
        name: state
        for name, state in states.items()
        if state["Type"] == "Task"
        and (state["Resource"] in CALLBACK_RESOURCES or state["Resource"] == "${AgeCheckActivityArn}")
    }
    assert {s["Resource"] for s in callback_tasks.values()} >= set(CALLBACK_RESOURCES)
    assert len(callback_tasks) == 5
    (machine,) = resources_of(template, "AWS::Serverless::StateMachine").values()
    subs = {key: ref_target(value) for key, value in machine["DefinitionSubstitutions"].items()}
    handed_off = {
        name
        for name, state in callback_tasks.items()
        if (fn := subs.get(str(state.get("Parameters", {}).get("FunctionName", "")).strip("${}")))
        and hands_off(template, fn)
    }
    assert handed_off == {"RequestApproval"}
    for name, state in callback_tasks.items():
        if name in handed_off:
            # Nobody beats while a person decides: a HeartbeatSeconds would time the task out; the timeout bounds it.
            assert "HeartbeatSeconds" not in state, name
            assert 0 < state["TimeoutSeconds"] <= 7 * 86400, name
        else:
            assert 0 < state["HeartbeatSeconds"] < state["TimeoutSeconds"], name
            # The workers beat every HeartbeatInterval seconds at most: leave room for two lost beats.
            assert state["HeartbeatSeconds"] >= 3 * max_interval, name
        (catch,) = state["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"]
        target = states[catch["Next"]]
        assert target["Type"] == "Fail", name
        assert target["ErrorPath"].startswith(catch["ResultPath"]), "the Fail state must carry the caught error"


def test_choices_branch_on_values_the_workers_return(definition: dict[str, Any]) -> None:
    results = {state["ResultPath"] for state in definition["States"].values() if state["Type"] == "Task"}
    choices = [state for state in definition["States"].values() if state["Type"] == "Choice"]
    assert choices
    for choice in choices:
        for rule in choice["Choices"]:
            assert any(rule["Variable"].startswith(result + ".") for result in results), rule


# ---------------------------------------------------------------------------------------------------------------
# events/
# ---------------------------------------------------------------------------------------------------------------
def documents() -> list[Path]:
    found = [TEMPLATE, ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    return [path for path in found if path.is_file()]


def test_every_events_file_named_in_the_docs_exists() -> None:
    for doc in documents():
        for named in re.findall(r"events/[\w./-]+\.json", doc.read_text(encoding="utf-8")):
            assert (ROOT / named).is_file(), f"{doc.name} names {named}, which does not exist"


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_event_has_the_shape_lambda_delivers(path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    if path.name.startswith("sqs_"):
        for record in event["Records"]:
            assert record["eventSource"] == "aws:sqs"
            assert isinstance(record["body"], str), "an SQS body is a JSON string"
            body = json.loads(record["body"])
            if "callbackId" in body:
                # A durable function's callback id: base64 (Lambda's pattern), a fake one that says so.
                assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", body["callbackId"])
                assert base64.b64decode(body["callbackId"]).startswith(b"FAKE-CALLBACK-ID-")
                assert "TaskToken" not in body, "a message with both is ambiguous: the worker hands it back"
            else:
                assert body["TaskToken"].startswith("FAKE-TASK-TOKEN-")
    elif path.name.startswith("durable_"):
        # A durable function's input, as `sam local invoke` or `aws lambda invoke` passes it: the order alone.
        assert set(event) == {"order"}
        assert {"orderId", "customerId", "items"} <= event["order"].keys()
    elif path.name.startswith("eventbridge_"):
        expected = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
        assert set(event) == expected
        assert event["detail"]["TaskToken"].startswith("FAKE-TASK-TOKEN-")
    elif path.name.startswith("direct_"):
        assert event["token"].startswith("FAKE-TASK-TOKEN-")
    elif path.name.startswith("apigateway_"):
        # An API Gateway REST API proxy event (the approval API), the token in the query string.
        assert {"resource", "path", "httpMethod", "queryStringParameters", "requestContext", "body"} <= event.keys()
        assert event["queryStringParameters"]["token"].startswith("FAKE-TASK-TOKEN-")
        assert event["requestContext"]["resourcePath"] == event["resource"]
    elif path.name.startswith("ecs_"):
        # An ECS Task State Change as EventBridge delivers it (AWS's documented example), from a task Step Functions
        # started, its RunTask overrides holding the token.
        expected = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
        assert set(event) == expected
        assert (event["source"], event["detail-type"]) == ("aws.ecs", "ECS Task State Change")
        detail = event["detail"]
        assert event["resources"] == [detail["taskArn"]]
        assert detail["startedBy"] == "AWS Step Functions"
        assert detail["lastStatus"] in {"PROVISIONING", "PENDING", "RUNNING", "DEPROVISIONING", "STOPPED"}
        if detail["lastStatus"] == "STOPPED":
            assert {"stopCode", "stoppedReason", "stoppedAt"} <= detail.keys()
        assert {"name", "lastStatus"} <= detail["containers"][0].keys()
        (override,) = detail["overrides"]["containerOverrides"]
        tokens = [e["value"] for e in override["environment"] if e["value"].startswith("FAKE-TASK-TOKEN-")]
        assert len(tokens) == 1
    elif path.name.startswith("activity_"):
        assert set(event) == {"taskToken", "input"}
        assert event["taskToken"].startswith("FAKE-TASK-TOKEN-")
        assert isinstance(json.loads(event["input"]), dict), "GetActivityTask's input is a JSON string"
    else:
        assert path.name == "state_machine_input.json", f"{path.name}: unknown kind of event"
        assert {"order", "customer"} <= event.keys()
