"""Templates: how state machines are found and resolved, and the rules about what surrounds them (CK004's worker
half, CK006, CK007, CK009, CK011, CK012, CK000)."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from tests.check.conftest import CheckTemplate
from tests.check.helpers import codes, machine, task

ASL = json.dumps(
    machine(
        {
            "Ask": task(
                Parameters={"QueueUrl": "${QueueUrl}", "MessageBody": {"TaskToken.$": "$$.Task.Token"}},
                HeartbeatSeconds="${Beat}",
            )
        }
    )
).replace('"${Beat}"', "${Beat}")


def ref(name: str) -> dict[str, Any]:
    return {"Ref": name}


def arn(name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [name, "Arn"]}


def sam(
    resources: dict[str, Any],
    *,
    beat: int = 90,
    env: dict[str, Any] | None = None,
    globals_: dict[str, Any] | None = None,
    machine_props: dict[str, Any] | None = None,
    report_failures: bool = True,
) -> str:
    """A SAM template (as JSON): a state machine whose callback task sends to Queue, consumed by Worker."""
    event: dict[str, Any] = {"Queue": arn("Queue")}
    if report_failures:
        event["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Parameters": {"Interval": {"Type": "Number", "Default": 20}},
        "Globals": {"Function": {"Timeout": 60, **(globals_ or {})}},
        "Resources": {
            "Machine": {
                "Type": "AWS::Serverless::StateMachine",
                "Properties": {
                    "DefinitionUri": "statemachine/x.asl.json",
                    "DefinitionSubstitutions": {"QueueUrl": ref("Queue"), "Beat": beat},
                    **(machine_props or {}),
                },
            },
            "Worker": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Handler": "app.handler",
                    "CodeUri": "src/",
                    "Environment": {"Variables": env or {}},
                    "Events": {"Jobs": {"Type": "SQS", "Properties": event}},
                },
            },
            **resources,
        },
    }
    return json.dumps(template)


def queue(visibility: int | None = 360, receives: int | None = 5, **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if visibility is not None:
        props["VisibilityTimeout"] = visibility
    if receives is not None:
        props["RedrivePolicy"] = {"deadLetterTargetArn": arn("Dlq"), "maxReceiveCount": receives}
    return {"Queue": {"Type": "AWS::SQS::Queue", "Properties": props, **extra}, "Dlq": {"Type": "AWS::SQS::Queue"}}


# The same application in YAML with short-form intrinsics, as people write it.
GOOD_YAML = """\
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Timeout: 60
Resources:
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: statemachine/x.asl.json
      DefinitionSubstitutions:
        QueueUrl: !Ref Queue
        Beat: 90
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      CodeUri: src/
      Events:
        Jobs:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
            FunctionResponseTypes: [ReportBatchItemFailures]
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 360
      RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 5}
  Dlq:
    Type: AWS::SQS::Queue
"""
INTERVAL = {"CALLBACK_KIT_HEARTBEAT_INTERVAL": ref("Interval")}
FILES = {"statemachine/x.asl.json": ASL, "src/app.py": "import callback_kit as ck\n"}


def test_a_well_formed_sam_application_has_no_findings(check_template: CheckTemplate) -> None:
    # GIVEN a state machine from DefinitionUri, a queue with a DLQ and 6x visibility, a callback-kit worker,
    # written in YAML with short-form intrinsics and in JSON
    # THEN nothing is found
    assert check_template(GOOD_YAML, FILES) == []
    assert check_template(sam(queue()), FILES) == []


# -- CK004: the worker's heartbeat interval -------------------------------------------------------------------
def test_ck004_heartbeat_against_callback_kits_default_interval(check_template: CheckTemplate) -> None:
    # GIVEN a callback-kit worker (its handler imports callback_kit) with the default 30 s, and HeartbeatSeconds 45
    findings = check_template(sam(queue(), beat=45), FILES)
    # THEN CK004 on the state, in the ASL file, naming the interval and where it came from
    assert [(f.code, f.where, f.path.endswith("x.asl.json"), f.resource) for f in findings] == [
        ("CK004", "Ask", True, "Machine")
    ]
    assert "30 s (Worker: callback-kit's default)" in findings[0].message


def test_ck004_interval_from_the_environment_and_a_parameter(check_template: CheckTemplate) -> None:
    # GIVEN CALLBACK_KIT_HEARTBEAT_INTERVAL: !Ref Interval (default 20), and HeartbeatSeconds 45 (>= 2x20)
    assert check_template(sam(queue(), beat=45, env=INTERVAL), FILES) == []
    # ...but 35 < 2x20
    findings = check_template(sam(queue(), beat=35, env=INTERVAL), FILES)
    assert codes(findings) == ["CK004"]
    assert "CALLBACK_KIT_HEARTBEAT_INTERVAL=20" in findings[0].message


def test_ck004_interval_from_globals(check_template: CheckTemplate) -> None:
    globals_ = {"Environment": {"Variables": {"CALLBACK_KIT_HEARTBEAT_INTERVAL": 50}}}
    findings = check_template(sam(queue(), beat=90, globals_=globals_), FILES)
    assert codes(findings) == ["CK004"]


def test_ck004_a_worker_with_heartbeats_off(check_template: CheckTemplate) -> None:
    findings = check_template(sam(queue(), env={"CALLBACK_KIT_HEARTBEAT_INTERVAL": "0"}), FILES)
    assert codes(findings) == ["CK004"]
    assert "sends no heartbeats" in findings[0].message


def test_ck004_workers_that_are_not_callback_kit_are_not_guessed(check_template: CheckTemplate) -> None:
    # GIVEN a worker that does not use callback_kit (its own heartbeat schedule is unknown)
    files = {**FILES, "src/app.py": "import boto3\n"}
    # THEN HeartbeatSeconds 45 is not compared with callback-kit's default
    assert check_template(sam(queue(), beat=45), files) == []


# -- CK006 / CK007 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("visibility", "level"), [(30, "error"), (59, "error"), (60, "warning"), (359, "warning"), (360, None)]
)
def test_ck006_visibility_against_the_function_timeout(
    check_template: CheckTemplate, visibility: int, level: str | None
) -> None:
    # GIVEN a queue feeding a 60 s function (Globals)
    findings = check_template(sam(queue(visibility)), FILES)
    # THEN below the timeout is an error, below 6x a warning, from 6x on nothing
    assert [(f.code, f.level, f.where) for f in findings] == ([("CK006", level, "Queue")] if level else [])


def test_ck006_default_visibility_is_30_seconds(check_template: CheckTemplate) -> None:
    assert [(f.code, f.level) for f in check_template(sam(queue(None)), FILES)] == [("CK006", "error")]


def test_ck007_no_batch_item_failures_and_no_dlq(check_template: CheckTemplate) -> None:
    # GIVEN the event source without ReportBatchItemFailures and the queue without a RedrivePolicy
    findings = check_template(sam(queue(receives=None), report_failures=False), FILES)
    assert sorted((f.code, f.where) for f in findings) == [("CK007", "Queue"), ("CK007", "Worker/Events/Jobs")]


def test_ck007_too_few_receives(check_template: CheckTemplate) -> None:
    findings = check_template(sam(queue(receives=1)), FILES)
    assert [(f.code, f.where) for f in findings] == [("CK007", "Queue")]
    assert "maxReceiveCount 1" in findings[0].message


def test_ck006_ck007_for_a_plain_event_source_mapping(check_template: CheckTemplate) -> None:
    # GIVEN CloudFormation (not SAM): a function, a queue and an AWS::Lambda::EventSourceMapping between them
    text = """\
        Resources:
          Fn:
            Type: AWS::Lambda::Function
            Properties: {Timeout: 120, Handler: a.b, Runtime: python3.13, Role: r, Code: {ZipFile: "x"}}
          Q:
            Type: AWS::SQS::Queue
            Properties:
              VisibilityTimeout: 300
              RedrivePolicy: {deadLetterTargetArn: arn:aws:sqs:us-east-1:1:d, maxReceiveCount: 5}
          Mapping:
            Type: AWS::Lambda::EventSourceMapping
            Properties: {EventSourceArn: !GetAtt Q.Arn, FunctionName: !Ref Fn}
        """
    findings = check_template(textwrap.dedent(text))
    assert sorted((f.code, f.level, f.where) for f in findings) == [
        ("CK006", "warning", "Q"),
        ("CK007", "warning", "Mapping"),
    ]


# -- CK009 -----------------------------------------------------------------------------------------------------
EVENTS_ASL = json.dumps(
    machine(
        {
            "Notify": task(
                Resource="arn:aws:states:::events:putEvents.waitForTaskToken",
                Parameters={
                    "Entries": [
                        {
                            "EventBusName": "${Bus}",
                            "Source": "shop",
                            "DetailType": "Ready",
                            "Detail": {"TaskToken.$": "$$.Task.Token"},
                        }
                    ]
                },
            )
        }
    )
)


def events_template(worker_extra: dict[str, Any] | None = None, target_extra: dict[str, Any] | None = None) -> str:
    """A putEvents callback task on Bus; a SAM EventBridgeRule invokes Notify; another rule feeds queue Q."""
    pattern = {"source": ["shop"], "detail-type": ["Ready"]}
    rule_event = {"Type": "EventBridgeRule", "Properties": {"EventBusName": ref("Bus"), "Pattern": pattern}}
    template = {
        "Resources": {
            "Machine": {
                "Type": "AWS::Serverless::StateMachine",
                "Properties": {"DefinitionUri": "events.asl.json", "DefinitionSubstitutions": {"Bus": ref("Bus")}},
            },
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "b"}},
            "Notify": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Handler": "app.handler",
                    "CodeUri": "src/",
                    "Events": {"Ready": rule_event},
                    **(worker_extra or {}),
                },
            },
            "Other": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventBusName": ref("Bus"),
                    "EventPattern": {"source": ["shop"]},
                    "Targets": [{"Id": "ToQueue", "Arn": arn("Q"), **(target_extra or {})}],
                },
            },
            "Q": {"Type": "AWS::SQS::Queue"},
        }
    }
    return json.dumps(template)


def test_ck009_eventbridge_worker_and_target_without_dlq(check_template: CheckTemplate) -> None:
    # GIVEN a putEvents callback task; its rule invokes a worker with no on-failure destination, and another
    # rule on the bus delivers to a queue with no DeadLetterConfig
    findings = check_template(events_template(), {"events.asl.json": EVENTS_ASL, "src/app.py": ""})
    # THEN CK009 for both: the worker and the queue target
    assert sorted((f.code, f.where) for f in findings) == [("CK009", "Notify"), ("CK009", "Other/Targets/ToQueue")]


def test_ck009_destinations_and_target_dlqs_satisfy_it(check_template: CheckTemplate) -> None:
    extra = {"EventInvokeConfig": {"DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": arn("Q")}}}}
    target = {"DeadLetterConfig": {"Arn": arn("Q")}}
    findings = check_template(events_template(extra, target), {"events.asl.json": EVENTS_ASL, "src/app.py": ""})
    assert findings == []


def test_ck009_ignores_rules_the_callback_events_do_not_match(check_template: CheckTemplate) -> None:
    # GIVEN the other rule matches another source: it does not carry the task's events
    text = events_template().replace('"EventPattern": {"source": ["shop"]}', '"EventPattern": {"source": ["billing"]}')
    findings = check_template(text, {"events.asl.json": EVENTS_ASL, "src/app.py": ""})
    assert [(f.code, f.where) for f in findings] == [("CK009", "Notify")]


# -- state machines: inline, DefinitionString, Express, unreadable ---------------------------------------------
def test_inline_definition_with_substitutions(check_template: CheckTemplate) -> None:
    # GIVEN an AWS::StepFunctions::StateMachine with an inline Definition whose task lacks a timeout
    text = """\
        Resources:
          M:
            Type: AWS::StepFunctions::StateMachine
            Properties:
              DefinitionSubstitutions: {Url: !Ref Q}
              Definition:
                StartAt: Ask
                States:
                  Ask:
                    Type: Task
                    Resource: arn:aws:states:::sqs:sendMessage.waitForTaskToken
                    HeartbeatSeconds: 60
                    Catch: [{ErrorEquals: [States.ALL], Next: Done}]
                    Parameters: {QueueUrl: "${Url}", MessageBody: {TaskToken.$: $$.Task.Token}}
                    Next: Done
                  Done: {Type: Succeed}
          Q:
            Type: AWS::SQS::Queue
        """
    findings = check_template(textwrap.dedent(text))
    # THEN the finding is on the template, at Machine/State
    assert [(f.code, f.where, f.path.endswith("template.yaml")) for f in findings] == [("CK001", "M/Ask", True)]


def test_definition_string_with_sub_and_join(check_template: CheckTemplate) -> None:
    # GIVEN JSON CloudFormation with DefinitionString built by Fn::Sub (pseudo parameters) and by Fn::Join
    definition = json.dumps(machine({"Ask": task(TimeoutSeconds=None, Resource="X")})).replace(
        '"X"', '"arn:${AWS::Partition}:states:::sqs:sendMessage.waitForTaskToken"'
    )
    template = {
        "Resources": {
            "Sub": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"DefinitionString": {"Fn::Sub": definition}},
            },
            "Join": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"DefinitionString": {"Fn::Join": ["", [definition[:20], definition[20:]]]}},
            },
        }
    }
    findings = check_template(json.dumps(template))
    assert sorted((f.code, f.where) for f in findings) == [("CK001", "Join/Ask"), ("CK001", "Sub/Ask")]


def test_ck011_callback_task_in_an_express_state_machine(check_template: CheckTemplate) -> None:
    findings = check_template(sam(queue(), machine_props={"Type": "EXPRESS"}), FILES)
    assert [(f.code, f.level) for f in findings] == [("CK011", "error")]


def test_ck000_an_unreadable_definition_is_a_finding(check_template: CheckTemplate) -> None:
    # GIVEN a DefinitionUri file that does not parse, and one that is missing
    text = """\
        Resources:
          Broken:
            Type: AWS::Serverless::StateMachine
            Properties: {DefinitionUri: broken.asl.json}
          Missing:
            Type: AWS::Serverless::StateMachine
            Properties: {DefinitionUri: missing.asl.json}
        """
    findings = check_template(textwrap.dedent(text), {"broken.asl.json": '{"StartAt": "A", "States": '})
    assert sorted((f.code, f.level, f.resource) for f in findings) == [
        ("CK000", "error", "Broken"),
        ("CK000", "error", "Missing"),
    ]


def test_resource_metadata_silences_a_code(check_template: CheckTemplate) -> None:
    # GIVEN a queue with a short visibility timeout whose Metadata says to ignore CK006 there
    silenced = queue(200, Metadata={"callback-kit": {"ignore": ["CK006"]}})
    assert check_template(sam(silenced), FILES) == []
    assert codes(check_template(sam(queue(200)), FILES)) == ["CK006"]


def test_json_typed_properties_given_as_strings(check_template: CheckTemplate) -> None:
    # GIVEN a RedrivePolicy written as a JSON string (CloudFormation accepts both) with too few receives
    redrive = json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq", "maxReceiveCount": 2})
    resources = {
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 360, "RedrivePolicy": redrive}}
    }
    findings = check_template(sam(resources), FILES)
    assert [(f.code, f.where) for f in findings] == [("CK007", "Queue")]
    assert "maxReceiveCount 2" in findings[0].message


def test_a_worker_that_hands_off_needs_no_heartbeat(check_template: CheckTemplate) -> None:
    # GIVEN a callback-kit worker that calls ck.hand_off() (a person completes the task), and a task without
    # HeartbeatSeconds
    files = {**FILES, "src/app.py": "import callback_kit as ck\n\ndef h(p):\n    email(ck.hand_off())\n"}
    asl = json.loads(ASL.replace("${Beat}", "1"))
    del asl["States"]["Ask"]["HeartbeatSeconds"]
    findings = check_template(sam(queue()), {**files, "statemachine/x.asl.json": json.dumps(asl)})
    # THEN no CK002: nobody could beat while the person decides
    assert findings == []
    # AND with a HeartbeatSeconds, CK004: the task would time out while it is out
    findings = check_template(sam(queue(), beat=90), files)
    assert codes(findings) == ["CK004"]
    assert "hands the token off" in findings[0].message


# -- CK012 -----------------------------------------------------------------------------------------------------
CONTAINER_ASL = json.dumps(
    machine(
        {
            "Run job": task(
                Resource="arn:aws:states:::ecs:runTask.waitForTaskToken",
                Parameters={
                    "LaunchType": "FARGATE",
                    "Cluster": "${ClusterArn}",
                    "TaskDefinition": "${JobTaskDefinition}",
                    "Overrides": {
                        "ContainerOverrides": [
                            {"Name": "job", "Environment": [{"Name": "TASK_TOKEN", "Value.$": "$$.Task.Token"}]}
                        ]
                    },
                },
            )
        }
    )
)
REAPER_PY = "from callback_kit.reaper import handler\n"
CONTAINER_FILES = {"statemachine/jobs.asl.json": CONTAINER_ASL, "src/reaper.py": REAPER_PY}


def container_template(reaper_pattern: dict[str, Any] | None = None, bus: Any = None) -> str:
    """A SAM application in the shape of the AWS samples: a cluster, a task definition, a state machine that runs
    it with ecs:runTask.waitForTaskToken, and (given a pattern) a reaper function on an EventBridge rule."""
    resources: dict[str, Any] = {
        "Cluster": {"Type": "AWS::ECS::Cluster"},
        "JobTaskDefinition": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"Family": "job"}},
        "Jobs": {
            "Type": "AWS::Serverless::StateMachine",
            "Properties": {
                "DefinitionUri": "statemachine/jobs.asl.json",
                "DefinitionSubstitutions": {
                    "ClusterArn": arn("Cluster"),
                    "JobTaskDefinition": ref("JobTaskDefinition"),
                },
            },
        },
        "Dlq": {"Type": "AWS::SQS::Queue"},
    }
    if reaper_pattern is not None:
        rule: dict[str, Any] = {"Pattern": reaper_pattern}
        if bus is not None:
            rule["EventBusName"] = bus
        resources["Reaper"] = {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Handler": "reaper.handler",
                "CodeUri": "src/",
                "EventInvokeConfig": {"DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": arn("Dlq")}}},
                "Events": {"Stopped": {"Type": "EventBridgeRule", "Properties": rule}},
            },
        }
    return json.dumps({"Transform": "AWS::Serverless-2016-10-31", "Resources": resources})


REAPER_PATTERN = {
    "source": ["aws.ecs"],
    "detail-type": ["ECS Task State Change"],
    "detail": {"clusterArn": [arn("Cluster")], "lastStatus": ["STOPPED"], "startedBy": ["AWS Step Functions"]},
}


def test_ck012_a_container_task_with_no_reaper(check_template: CheckTemplate) -> None:
    # GIVEN a state machine that runs a container with ecs:runTask.waitForTaskToken, and no rule for ECS stops
    findings = check_template(container_template(), CONTAINER_FILES)
    # THEN CK012 is a warning on the task, pointing at the reaper
    assert [(f.code, f.level, f.where, f.resource) for f in findings] == [("CK012", "warning", "Run job", "Jobs")]
    assert "callback_kit.reaper" in findings[0].fix


def test_ck012_a_rule_routing_ecs_stops_to_a_reaper_satisfies_it(check_template: CheckTemplate) -> None:
    # GIVEN the same application with a reaper on the default bus's ECS Task State Change events
    # WHEN checked  THEN nothing is found
    assert check_template(container_template(REAPER_PATTERN), CONTAINER_FILES) == []
    # AND a rule on source alone (every ECS event) routes them too
    assert check_template(container_template({"source": ["aws.ecs"]}), CONTAINER_FILES) == []


@pytest.mark.parametrize(
    ("pattern", "bus"),
    [
        ({"source": ["aws.ecs"], "detail-type": ["ECS Container Instance State Change"]}, None),
        ({"source": ["aws.batch"], "detail-type": ["Batch Job State Change"]}, None),
        (REAPER_PATTERN, "jobs-bus"),
    ],
    ids=["other-ecs-events", "other-source", "custom-bus"],
)
def test_ck012_rules_that_never_see_a_task_stop_do_not_count(
    check_template: CheckTemplate, pattern: dict[str, Any], bus: str | None
) -> None:
    # GIVEN a rule that never receives an ECS Task State Change (other events, or a bus ECS does not send to)
    findings = check_template(container_template(pattern, bus), CONTAINER_FILES)
    # THEN the container task still has no reaper
    assert codes(findings) == ["CK012"]


def test_ck012_can_be_silenced_on_the_state_or_the_state_machine(check_template: CheckTemplate) -> None:
    # GIVEN a container task whose Comment, or whose state machine's Metadata, silences CK012
    commented = CONTAINER_ASL.replace('"Type": "Task"', '"Comment": "callback-kit: ignore CK012", "Type": "Task"')
    silenced = json.loads(container_template())
    silenced["Resources"]["Jobs"]["Metadata"] = {"callback-kit": {"ignore": ["CK012"]}}
    # WHEN checked  THEN nothing is found
    assert check_template(container_template(), {**CONTAINER_FILES, "statemachine/jobs.asl.json": commented}) == []
    assert check_template(json.dumps(silenced), CONTAINER_FILES) == []
