"""Create the SAM app's resources in moto and route its functions to the handlers in ``handlers/``.

What ``sam deploy`` would create, the demo creates in the simulator from ``template.yaml`` itself: the SQS
queues (dead-letter queues and redrive policies included), the event buses, each function's trigger (an SQS
event source, an EventBridge rule, or none for a directly invoked function), the activities and the state
machine, with ``DefinitionSubstitutions`` resolved to what was created. IAM roles and policies, log groups and
the layer have no part in a local run and are skipped.

The EventBridge rule gets an SQS target from which the simulator feeds the function as an async invoke (moto
cannot invoke Lambda code), with the function's ``EventInvokeConfig.MaximumRetryAttempts``. SNS topics are
created (their e-mail subscriptions are not); a function behind API Gateway (an ``Api`` event) is not served:
the demo stands in for the person who would call it. A durable function (``DurableConfig``) is left to
:mod:`demo.durable`, which runs it on AWS's local durable runner. The functions' environment variables that name
created resources (a topic's ARN, the API's URL, a queue's URL) are collected in :attr:`Deployed.environment` for
the demo to set.

Example:
    >>> deployed = deploy(sim, app, wrap=lambda h: h)                         # doctest: +SKIP
    >>> deployed.state_machine_arn  # doctest: +SKIP
    'arn:aws:states:us-east-1:123456789012:stateMachine:callback-kit-callbacks'
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from callback_kit.simulator import LambdaHandler, LocalStepFunctions, Queue
from demo.template import SamApp, TemplateError

__all__ = ["Deployed", "deploy", "load_code"]

#: Queue properties that matter to a local run (encryption and the like do not).
_QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds")


@dataclass
class Deployed:
    """What :func:`deploy` created, for the demo's summary and its workers.

    Attributes:
        state_machine_arn: the state machine running the app's ASL.
        activities: activity ARN by logical id.
        created: one readable line per created resource.
        substitutions: the resolved ``DefinitionSubstitutions``.
        buses: names of the event buses created.
        functions: function name by the queue its events come from (the simulator names deliveries so).
        topics: SNS topic ARN by logical id.
        environment: the functions' environment variables that name created resources (not the Globals').
    """

    state_machine_arn: str = ""
    activities: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    substitutions: dict[str, Any] = field(default_factory=dict)
    buses: set[str] = field(default_factory=set)
    functions: dict[str, str] = field(default_factory=dict)
    topics: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)


def load_code(code_root: Path, handler: str) -> Any:
    """Import ``module.attribute`` from ``code_root`` as Lambda does with ``CodeUri`` and ``Handler``.

    The module is loaded from its file under a private name, so neither ``sys.path`` nor a ``handlers``
    package on it is needed.

    Raises:
        TemplateError: the file or the attribute does not exist.

    Example:
        >>> load_code(Path("handlers"), "order_check.handler")               # doctest: +SKIP
        <callback_kit.handler.CallbackHandler object at ...>
    """
    module_name, _, attribute = handler.rpartition(".")
    path = code_root / (module_name.replace(".", "/") + ".py")
    if not path.is_file():
        raise TemplateError(f"handler {handler}: {path} does not exist")
    qualified = f"_callback_kit_demo_code.{module_name}"
    module = sys.modules.get(qualified)
    if module is None:
        spec = importlib.util.spec_from_file_location(qualified, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has a loader
            raise TemplateError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module  # pydantic resolves the models' annotations through sys.modules
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[qualified]
            raise
    return _attribute(module, attribute, handler)


def _attribute(module: ModuleType, attribute: str, handler: str) -> Any:
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise TemplateError(f"handler {handler}: {module.__file__} has no {attribute}") from None


def deploy(sim: LocalStepFunctions, app: SamApp, *, wrap: Callable[[Any], LambdaHandler]) -> Deployed:
    """Create the app's resources in ``sim`` and route each function to its handler, passed through ``wrap``.

    Raises:
        TemplateError: the template needs something the demo cannot create.
    """
    out = Deployed()
    _create_queues(sim, app, out)
    _create_topics(sim, app, out)
    if any(e.get("Type") == "Api" for e in _events(app)):
        # SAM's implicit API: nothing is served locally, but the functions' environment may name its URL.
        app.add("ServerlessRestApi", Ref="local-api")
    buses = _name_buses(app)
    for logical_id, name in buses.items():  # named now: rules and the state machine refer to them
        app.add(logical_id, Ref=name, Name=name, Arn=_bus_arn(sim, name))
    _create_functions(sim, app, out, wrap)
    for name in buses.values():
        if name not in out.buses:  # a bus no rule created
            sim.events.create_event_bus(Name=name)
            out.buses.add(name)
            out.created.append(f"event bus {name}")
    for logical_id, props in app.resources_of_type("AWS::StepFunctions::Activity").items():
        arn = sim.create_activity(app.physical_name(logical_id, props, "Name"))
        app.add(logical_id, Ref=arn, Name=arn.rsplit(":", 1)[-1])
        out.activities[logical_id] = arn
        out.created.append(f"activity {arn.rsplit(':', 1)[-1]}")
    name, path, substitutions = app.state_machine()
    out.substitutions = {key: app.resolve(value) for key, value in substitutions.items()}
    out.state_machine_arn = sim.create_state_machine(name, path, substitutions=out.substitutions)
    out.created.append(f"state machine {name} from {path.relative_to(app.root)}")
    return out


def _create_queues(sim: LocalStepFunctions, app: SamApp, out: Deployed) -> None:
    queues = app.resources_of_type("AWS::SQS::Queue")
    # Dead-letter queues first: the others' RedrivePolicy names their ARN.
    for logical_id, props in sorted(queues.items(), key=lambda item: "RedrivePolicy" in item[1]):
        name = app.physical_name(logical_id, props, "QueueName")
        attributes = {key: str(props[key]) for key in _QUEUE_ATTRIBUTES if key in props}
        redrive = ""
        if "RedrivePolicy" in props:
            policy = app.resolve(props["RedrivePolicy"])
            attributes["RedrivePolicy"] = json.dumps(policy)
            dlq = str(policy.get("deadLetterTargetArn", "")).rsplit(":", 1)[-1]
            redrive = f", to {dlq} after {policy.get('maxReceiveCount')} receives"
        queue = sim.create_queue(name, fifo=bool(props.get("FifoQueue")), attributes=attributes)
        app.add(logical_id, Ref=queue.url, Arn=queue.arn, QueueName=queue.name, QueueUrl=queue.url)
        out.created.append(f"queue {name}{redrive}")


def _create_topics(sim: LocalStepFunctions, app: SamApp, out: Deployed) -> None:
    import boto3

    sns = boto3.client("sns", region_name=sim.region)
    for logical_id, props in app.resources_of_type("AWS::SNS::Topic").items():
        name = app.physical_name(logical_id, props, "TopicName")
        arn = sns.create_topic(Name=name)["TopicArn"]
        app.add(logical_id, Ref=arn, TopicName=name, TopicArn=arn)
        out.topics[logical_id] = arn
        out.created.append(f"topic {name}")


def _events(app: SamApp) -> list[Mapping[str, Any]]:
    return [
        event
        for props in app.resources_of_type("AWS::Serverless::Function").values()
        for event in (props.get("Events") or {}).values()
        if isinstance(event, Mapping)
    ]


def _collect_environment(app: SamApp, logical_id: str, props: Mapping[str, Any], out: Deployed) -> None:
    variables = (props.get("Environment") or {}).get("Variables") or {}
    for key, value in variables.items():
        if not isinstance(value, Mapping):
            continue  # a literal, such as the service name: per function, and not needed locally
        resolved = str(app.resolve(value))
        if out.environment.setdefault(key, resolved) != resolved:
            raise TemplateError(f"{logical_id}: ${key} differs between functions; the demo runs them in one process")


@contextlib.contextmanager
def _service_name(props: Mapping[str, Any]) -> Iterator[None]:
    """The function's literal ``POWERTOOLS_SERVICE_NAME`` set while its code is imported, as Lambda sets it: its
    module-level ``Logger`` and ``Metrics`` take their service from it then (the metrics' ``service`` dimension)."""
    service = ((props.get("Environment") or {}).get("Variables") or {}).get("POWERTOOLS_SERVICE_NAME")
    saved = os.environ.get("POWERTOOLS_SERVICE_NAME")
    if isinstance(service, str):
        os.environ["POWERTOOLS_SERVICE_NAME"] = service
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("POWERTOOLS_SERVICE_NAME", None)
        else:
            os.environ["POWERTOOLS_SERVICE_NAME"] = saved


def _name_buses(app: SamApp) -> dict[str, str]:
    return {
        logical_id: app.physical_name(logical_id, props, "Name")
        for logical_id, props in app.resources_of_type("AWS::Events::EventBus").items()
    }


def _bus_arn(sim: LocalStepFunctions, name: str) -> str:
    return f"arn:aws:events:{sim.region}:{sim.account_id}:event-bus/{name}"


def _create_functions(
    sim: LocalStepFunctions,
    app: SamApp,
    out: Deployed,
    wrap: Callable[[Any], LambdaHandler],
) -> None:
    code_defaults = app.globals_of("Function")
    for logical_id, props in app.resources_of_type("AWS::Serverless::Function").items():
        code_uri = props.get("CodeUri", code_defaults.get("CodeUri"))
        if not isinstance(code_uri, str) or not isinstance(props.get("Handler"), str):
            raise TemplateError(f"{logical_id} needs a local CodeUri and a Handler")
        if "DurableConfig" in props:
            # A durable function runs on AWS's local durable runner (demo.durable), not in moto; its code needs the
            # durable SDK (Python 3.11+), so it is not imported here. Its environment names the queue it sends to.
            name = app.physical_name(logical_id, props, "FunctionName")
            _collect_environment(app, logical_id, props, out)
            app.add(logical_id, Ref=name, Arn=f"arn:aws:lambda:{sim.region}:{sim.account_id}:function:{name}")
            continue
        with _service_name(props):
            handler = wrap(load_code(app.root / code_uri, props["Handler"]))
        name = app.physical_name(logical_id, props, "FunctionName")
        _collect_environment(app, logical_id, props, out)
        triggers = [e for e in (props.get("Events") or {}).items() if isinstance(e[1], Mapping)]
        for event_name, event in triggers:
            _route_trigger(sim, app, out, logical_id, name, event_name, event, props, handler)
        if not triggers:
            arn = sim.route_lambda(name, handler)
            out.created.append(f"function {name} ({props['Handler']}, invoked directly)")
        else:
            arn = sim.create_function(name)
        app.add(logical_id, Ref=name, Arn=arn)


def _route_trigger(
    sim: LocalStepFunctions,
    app: SamApp,
    out: Deployed,
    logical_id: str,
    function_name: str,
    event_name: str,
    event: Mapping[str, Any],
    props: Mapping[str, Any],
    handler: LambdaHandler,
) -> None:
    kind, spec = event.get("Type"), dict(event.get("Properties") or {})
    if kind == "SQS":
        queue_arn = app.resolve(spec["Queue"])
        queue = _queue_by_arn(app, str(queue_arn))
        sim.route_sqs(queue, handler, batch_size=int(spec.get("BatchSize", 10)))
        out.functions[queue.name] = function_name
        out.created.append(f"function {function_name} ({props['Handler']}) <- SQS {queue.name}")
    elif kind == "EventBridgeRule":
        bus_name = str(app.resolve(spec.get("EventBusName", "default")))
        target = sim.create_queue(f"{function_name}-{event_name}-invocations")
        rule = f"{function_name}-{event_name}"
        if bus_name != "default" and bus_name not in out.buses:
            sim.create_event_bus_to_queue(bus_name, target, event_pattern=spec.get("Pattern"), rule_name=rule)
            out.buses.add(bus_name)
            out.created.append(f"event bus {bus_name}")
        else:  # the default bus, or one an earlier rule created
            sim.events.put_rule(Name=rule, EventBusName=bus_name, EventPattern=json.dumps(spec.get("Pattern") or {}))
            sim.events.put_targets(Rule=rule, EventBusName=bus_name, Targets=[{"Id": "queue", "Arn": target.arn}])
        retries = int((props.get("EventInvokeConfig") or {}).get("MaximumRetryAttempts", 2))
        sim.route_eventbridge(target, handler, retries=retries)
        out.functions[target.name] = function_name
        pattern = json.dumps(spec.get("Pattern"), separators=(",", ":"))
        out.created.append(f"rule {rule} on {bus_name} {pattern} -> SQS {target.name}")
        out.created.append(f"function {function_name} ({props['Handler']}) <- {target.name}, async, {retries} retries")
    elif kind == "Api":
        where = f"{str(spec.get('Method', 'any')).upper()} {spec.get('Path')}"
        out.created.append(f"function {function_name} ({props['Handler']}) <- API {where}: not served locally")
    else:
        raise TemplateError(f"{logical_id}.Events.{event_name}: the demo does not simulate {kind} triggers")


def _queue_by_arn(app: SamApp, arn: str) -> Queue:
    for attributes in app.refs.values():
        if attributes.get("Arn") == arn and "QueueUrl" in attributes:
            name = attributes["QueueName"]
            return Queue(name, attributes["QueueUrl"], arn, name.endswith(".fifo"))
    raise TemplateError(f"no queue with ARN {arn} was created")
