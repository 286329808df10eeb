"""The ``sam build`` output imports and runs: each built function answers a real task on its ``events/`` file.

For each case, a one-state machine on moto's Step Functions simulator (served by ``ThreadedMotoServer``) hands out
a real task token through a ``sqs:sendMessage.waitForTaskToken`` task. The token replaces the fake one in the
``events/`` file, and the *built* handler runs on that event in a subprocess: the runtime's Python (3.13 for
``python3.13``) with ``-S`` and ``PYTHONPATH`` set to the function's build directory and the layer's ``python/``
directory, as Lambda lays out ``/var/task`` and ``/opt/python``, then a directory that stands for the runtime's own
AWS SDK (Lambda's Python runtimes ship boto3; the layer leaves it out). So the only callback_kit and pydantic it can
import are the ones ``sam build`` put in the layer, boto3 comes after the layer as on Lambda, and the test
process's ``sys.path`` is never touched.
The handler's default client reaches moto through ``AWS_ENDPOINT_URL``; the test then asserts the execution's
end (output, or error name), which only the handler's SendTaskSuccess/SendTaskFailure can have produced.

The activity event runs the same way through ``ActivityWorker.run_one`` (moto has no GetActivityTask, so the
recorded GetActivityTask response stands in for the poll).

Run ``.ci/sam-checks`` first (it runs ``sam build``); without ``.aws-sam/build`` these tests skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from demo.template import load_template

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
EVENTS = ROOT / "events"
RUNNER = Path(__file__).with_name("run_built.py")
REGION = "us-east-1"
ACCOUNT = "123456789012"
FAKE_TOKEN = re.compile(r"FAKE-TASK-TOKEN-[A-Za-z0-9-]+")

NOT_BUILT = ".aws-sam/build not found: run .ci/sam-checks (it runs sam build) to test the built functions"


@dataclass(frozen=True)
class Case:
    """One built function on one event file, and how the task must end."""

    function: str
    event: str
    status: str  # the execution's final status: SUCCEEDED or FAILED
    expect: dict[str, Any]  # SUCCEEDED: items the output must contain; FAILED: {"error": name}
    activity: bool = False
    #: "task": a worker answering its task; "hand-off": a notifier that hands the token off and answers nothing;
    #: "api": the approval API, completing a handed-off task and answering in HTTP (``expect["statusCode"]``);
    #: "reaper": the ECS reaper, which answers only for a stopped task (``RUNNING``: the task must still wait).
    kind: str = "task"


REAPED = {"error": "CallbackKit.ContainerStopped"}
CASES = [
    Case("OrderCheckFunction", "sqs_order_check.json", "SUCCEEDED", {"status": "approved", "ageCheck": "online"}),
    Case("OrderCheckFunction", "sqs_order_check_rejected.json", "FAILED", {"error": "Order.Rejected"}),
    Case("NotifyFunction", "eventbridge_notify.json", "SUCCEEDED", {"acknowledged": True, "orderId": "ord-1001"}),
    Case("NotifyFunction", "eventbridge_notify_no_email.json", "FAILED", {"error": "Notify.NoRecipient"}),
    Case("AgeCheckFunction", "direct_age_check.json", "SUCCEEDED", {"verified": True}),
    Case("AgeCheckFunction", "direct_age_check_underage.json", "SUCCEEDED", {"verified": False}),
    Case("AgeCheckFunction", "direct_age_check_invalid.json", "FAILED", {"error": "Age.InvalidBirthDate"}),
    Case("AgeCheckFunction", "activity_age_check.json", "SUCCEEDED", {"verified": True}, activity=True),
    Case("RequestApprovalFunction", "direct_request_approval.json", "RUNNING", {}, kind="hand-off"),
    Case("ApprovalDecisionFunction", "apigateway_approve.json", "SUCCEEDED", {"approved": True}, kind="api"),
    Case("ApprovalDecisionFunction", "apigateway_reject.json", "FAILED", {"error": "Order.NotApproved"}, kind="api"),
    # The reaper: a stopped ECS task whose container never answered fails its task; one that is still running, or
    # whose token is in a variable the reaper does not read, leaves it waiting.
    Case("ReaperFunction", "ecs_task_failed_to_start.json", "FAILED", REAPED, kind="reaper"),
    Case("ReaperFunction", "ecs_task_out_of_memory.json", "FAILED", REAPED, kind="reaper"),
    Case("ReaperFunction", "ecs_task_exited_0.json", "FAILED", REAPED, kind="reaper"),
    Case("ReaperFunction", "ecs_task_running.json", "RUNNING", {"result": "not_stopped"}, kind="reaper"),
    Case("ReaperFunction", "ecs_task_job_token.json", "RUNNING", {"result": "no_token"}, kind="reaper"),
]


def runtime_python(runtime: str) -> str | None:
    """The interpreter for a Lambda runtime such as ``python3.13``: pyenv's install, else one on PATH."""
    version = runtime.removeprefix("python")
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for install in sorted(pyenv_root.glob(f"versions/{version}*"), reverse=True):
        candidate = install / "bin" / f"python{version}"
        if candidate.is_file():
            return str(candidate)
    return shutil.which(f"python{version}")


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    """The built template's resources, each function's properties merged over ``Globals.Function``."""
    if not (BUILD / "template.yaml").is_file():
        pytest.skip(NOT_BUILT)
    template = load_template(BUILD / "template.yaml")
    resources: dict[str, Any] = template["Resources"]
    defaults = template.get("Globals", {}).get("Function", {})
    for resource in resources.values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"] = {**defaults, **resource["Properties"]}
    return resources


#: What the Lambda Python runtime provides that the layer leaves out: the AWS SDK and its dependencies.
RUNTIME_SDK = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")


@pytest.fixture(scope="module")
def runtime_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only the runtime's SDK (links to this environment's copies), like Lambda's /var/runtime."""
    import importlib.util

    sdk = tmp_path_factory.mktemp("var-runtime")
    for name in RUNTIME_SDK:
        spec = importlib.util.find_spec(name)
        assert spec is not None, f"{name} is not installed"
        assert spec.origin is not None, f"{name} has no file"
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (sdk / source.name).symlink_to(source)
    return sdk


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server with the Step Functions simulator on; yields its endpoint URL."""
    pytest.importorskip("moto.server")
    from callback_kit.simulator import moto_server

    with moto_server() as endpoint:
        yield endpoint


def _clients(endpoint: str) -> tuple[Any, Any]:
    import boto3

    kwargs: dict[str, Any] = {
        "endpoint_url": endpoint,
        "region_name": REGION,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    return boto3.client("stepfunctions", **kwargs), boto3.client("sqs", **kwargs)


def _hand_out_token(endpoint: str, name: str) -> tuple[str, str]:
    """Start an execution that waits on a callback task; return (execution ARN, its task token)."""
    sfn, sqs = _clients(endpoint)
    queue_url = sqs.create_queue(QueueName=f"tokens-{name}")["QueueUrl"]
    definition = {
        "StartAt": "WaitForWorker",
        "States": {
            "WaitForWorker": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {"QueueUrl": queue_url, "MessageBody": {"TaskToken.$": "$$.Task.Token"}},
                # The handler heartbeats every second (CALLBACK_KIT_HEARTBEAT_INTERVAL=1): moto answers
                # heartbeats to a task without HeartbeatSeconds with InvalidToken.
                "HeartbeatSeconds": 10,
                "TimeoutSeconds": 60,
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name=f"built-{name}",
        definition=json.dumps(definition),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/built-functions-test",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, name=f"run-{name}", input="{}")["executionArn"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
        if messages:
            token: str = json.loads(messages[0]["Body"])["TaskToken"]
            return execution, token
    raise AssertionError(f"the simulator sent no task token for {name} within 15 s")


def _approval_topic(endpoint: str, name: str) -> tuple[str, str]:
    """An SNS topic for the approval requests, read by a queue; returns (topic ARN, queue URL)."""
    import boto3

    _, sqs = _clients(endpoint)
    sns = boto3.client(
        "sns", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    topic = sns.create_topic(Name=f"approvals-{name}")["TopicArn"]
    url = sqs.create_queue(QueueName=f"approvals-{name}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return topic, url


def _first_message(endpoint: str, queue_url: str) -> str:
    _, sqs = _clients(endpoint)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
        if messages:
            return str(messages[0]["Body"])
    raise AssertionError("the notifier published no approval request within 15 s")


def _wait_for_end(endpoint: str, execution: str) -> dict[str, Any]:
    sfn, _ = _clients(endpoint)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        description: dict[str, Any] = sfn.describe_execution(executionArn=execution)
        if description["status"] != "RUNNING":
            return description
        time.sleep(0.1)
    raise AssertionError(f"{execution} still RUNNING 15 s after the handler returned: no callback reached it")


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.event.removesuffix(".json"))
def test_built_function_answers_its_task(
    case: Case, built: dict[str, Any], moto_endpoint: str, runtime_sdk: Path, tmp_path: Path
) -> None:
    # GIVEN the built function, its layer, the runtime's Python and a task waiting for a callback on moto
    function = built[case.function]["Properties"]
    layers = [built[next(iter(ref.values()))]["Properties"]["ContentUri"] for ref in function["Layers"]]
    python = runtime_python(function["Runtime"])
    if python is None:
        pytest.skip(f"no interpreter for {function['Runtime']}: the built layer's binary wheels need it")
    name = f"{case.event.removesuffix('.json').replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    execution, token = _hand_out_token(moto_endpoint, name)
    event_text = (EVENTS / case.event).read_text(encoding="utf-8")
    assert FAKE_TOKEN.search(event_text), f"{case.event} has no FAKE-TASK-TOKEN-... to replace"
    event_file = tmp_path / case.event
    event_file.write_text(FAKE_TOKEN.sub(token, event_text), encoding="utf-8")

    # WHEN the built handler runs on the event, with nothing importable but the build output
    python_path = [str(BUILD / function["CodeUri"])] + [str(BUILD / layer / "python") for layer in layers]
    python_path.append(str(runtime_sdk))  # after the layers, as Lambda's runtime directories are
    command = [python, "-S", str(RUNNER), function["Handler"], str(event_file)]
    if case.activity:
        command += ["--activity", f"arn:aws:states:{REGION}:{ACCOUNT}:activity:age-check"]
    inbox = _approval_topic(moto_endpoint, name) if case.kind == "hand-off" else None
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(python_path),
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "CALLBACK_KIT_HEARTBEAT_INTERVAL": "1",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_SERVICE_NAME": case.function,
    }
    if inbox is not None:
        env.update(
            APPROVAL_TOPIC_ARN=inbox[0], APPROVAL_API_URL="https://abc123.execute-api.us-east-1.amazonaws.com/Prod"
        )
    proc = subprocess.run(  # noqa: S603 - fixed interpreter and script, arguments from this file
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"built handler failed:\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    # THEN the code ran from the build output, and its callback ended the execution as expected
    assert Path(report["handler_file"]).is_relative_to(BUILD / function["CodeUri"])
    assert any(Path(report["callback_kit_file"]).is_relative_to(BUILD / layer) for layer in layers)
    # AND the AWS SDK came from the runtime, not from the layer (which leaves it out): botocore always (callback-kit
    # builds its clients with it), boto3 when the function's own code imports it
    assert Path(report["botocore_file"]).is_relative_to(runtime_sdk), report["botocore_file"]
    if report["boto3_file"] is not None:
        assert Path(report["boto3_file"]).is_relative_to(runtime_sdk), report["boto3_file"]
    if case.activity:
        assert report["result"] == case.status.lower()
    elif case.function == "OrderCheckFunction":
        # A delivered failure callback is an answered task, not a batch item failure.
        assert report["result"] == {"batchItemFailures": []}
    elif case.kind == "api":
        assert report["result"]["statusCode"] == 200, report["result"]
    elif case.kind == "reaper":
        assert report["result"] == {"result": case.expect.get("result", "failed")}, report["result"]
        if case.status == "RUNNING":
            time.sleep(1.0)
            sfn, _ = _clients(moto_endpoint)
            assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
            sfn.stop_execution(executionArn=execution)
            return
    else:
        assert report["result"] is None
    if inbox is not None:
        # A hand-off answers nothing: the task still waits, and the approver got links that carry its token.
        message = _first_message(moto_endpoint, inbox[1])
        assert urllib.parse.quote(token, safe="") in message
        time.sleep(1.0)
        sfn, _ = _clients(moto_endpoint)
        assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
        sfn.stop_execution(executionArn=execution)
        return
    description = _wait_for_end(moto_endpoint, execution)
    assert description["status"] == case.status, description
    if case.status == "SUCCEEDED":
        output = json.loads(description["output"])
        assert output.items() >= case.expect.items(), output
    else:
        assert description.get("error") == case.expect["error"], description


#: Events of the durable function and of its callbacks: they need Lambda's durable execution API, which moto lacks.
#: The demo and tests/durable run that exchange on AWS's local durable runner instead.
DURABLE_EVENTS = {"durable_order.json", "sqs_order_check_durable.json"}


def test_every_event_file_is_run_on_a_built_function() -> None:
    # GIVEN the events/ directory WHEN compared with the cases above THEN none is left untried but the durable ones
    lambda_events = {p.name for p in EVENTS.glob("*.json")} - {"state_machine_input.json"}
    assert lambda_events - DURABLE_EVENTS == {case.event for case in CASES}
    assert lambda_events >= DURABLE_EVENTS
