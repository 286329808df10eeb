"""The parts of a SAM/CloudFormation template a callback workflow depends on.

State machines (``DefinitionUri`` files, inline ``Definition``, ``DefinitionString``, with
``DefinitionSubstitutions``), Lambda functions (``Timeout`` and ``Environment`` with SAM ``Globals``, asynchronous
failure handling), SQS queues and the event sources that feed functions from them, EventBridge rules and their
targets, and SNS subscriptions. What cannot be resolved offline (an S3 ``DefinitionUri``, an imported value) is
left out rather than guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callback_kit.check.intrinsics import Resolver, referenced_ids
from callback_kit.check.machines import SAM_MACHINE, SFN_MACHINE, Machine, read_machine

SAM_FUNCTION, LAMBDA_FUNCTION = "AWS::Serverless::Function", "AWS::Lambda::Function"
DEFAULT_LAMBDA_TIMEOUT = 3.0
DEFAULT_VISIBILITY_TIMEOUT = 30.0
_HAND_OFF = "hand_off("
_ARN_SERVICE = re.compile(r"^arn:[^:]*:(sqs|lambda|sns):")


@dataclass
class Function:
    """A Lambda function, with SAM Globals applied."""

    logical_id: str
    timeout: float | None
    env: dict[str, Any]
    async_failure_handled: bool
    callback_kit: bool
    #: Its handler calls ``ck.hand_off()``: someone else (a person, an approval API) completes its tasks.
    hands_off: bool = False
    #: A Lambda durable function (it has a ``DurableConfig``): suspended while it waits, so it sends no heartbeats.
    durable: bool = False
    #: Its ``DurableConfig.ExecutionTimeout`` in seconds (``None``: not set, or not known offline): no wait of the
    #: function outlasts it.
    execution_timeout: float | None = None


@dataclass
class Queue:
    """An SQS queue defined in the template."""

    logical_id: str
    visibility_timeout: float | None
    has_dlq: bool
    max_receive_count: float | None = None


@dataclass
class QueueSource:
    """An SQS event source mapping: a queue feeding a function."""

    where: str
    resource: str
    queue: str | None
    function: str | None
    report_batch_item_failures: bool


@dataclass
class RuleTarget:
    """One target of an EventBridge rule (event pattern rules only: schedules carry no tokens)."""

    where: str
    resource: str
    bus: str
    pattern: Mapping[str, Any]
    function: str | None
    queue: str | None
    has_dlq: bool


@dataclass
class Template:
    """A template, read for the checker."""

    path: str
    resolver: Resolver
    machines: list[Machine] = field(default_factory=list)
    functions: dict[str, Function] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    queue_sources: list[QueueSource] = field(default_factory=list)
    rule_targets: list[RuleTarget] = field(default_factory=list)
    subscriptions: list[tuple[str, str]] = field(default_factory=list)  # (topic, function)
    resource_types: dict[str, str] = field(default_factory=dict)


def read_template(document: Mapping[str, Any], path: str) -> Template:
    """Build the :class:`Template` of a parsed template found at ``path`` (for relative ``DefinitionUri``)."""
    resolver = Resolver(document)
    model = Template(path, resolver)
    base = Path(path).parent
    globals_ = document.get("Globals")
    function_globals = _mapping(_mapping(globals_).get("Function"))
    model.resource_types = {k: str(_mapping(r).get("Type", "")) for k, r in resolver.resources.items()}
    for logical_id, resource in resolver.resources.items():
        if not isinstance(resource, Mapping):
            continue
        kind = model.resource_types[logical_id]
        props = _mapping(resource.get("Properties"))
        if kind in (SAM_MACHINE, SFN_MACHINE):
            model.machines.append(read_machine(logical_id, kind, props, base, path, resolver))
        elif kind == SAM_FUNCTION:
            _sam_function(model, logical_id, props, function_globals, base)
        elif kind == LAMBDA_FUNCTION:
            _lambda_function(model, logical_id, props)
        elif kind == "AWS::SQS::Queue":
            redrive = _mapping(_json(props.get("RedrivePolicy")))
            visibility = resolver.number(props.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT))
            receives = resolver.number(redrive.get("maxReceiveCount"))
            model.queues[logical_id] = Queue(logical_id, visibility, bool(redrive.get("deadLetterTargetArn")), receives)
        elif kind == "AWS::Lambda::EventSourceMapping":
            source = _one(props.get("EventSourceArn"), model, resolver)
            if source is None or not _is(model, source, "AWS::SQS::Queue", "sqs"):
                continue
            model.queue_sources.append(
                QueueSource(
                    logical_id,
                    logical_id,
                    source if source in resolver.resources else None,
                    _one(props.get("FunctionName"), model, resolver),
                    "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or ()),
                )
            )
        elif kind == "AWS::Events::Rule" and props.get("EventPattern") is not None:
            _rule_targets(model, logical_id, props, resolver)
        elif kind == "AWS::SNS::Subscription" and str(props.get("Protocol")) == "lambda":
            topic, function = _one(props.get("TopicArn"), model, resolver), _one(props.get("Endpoint"), model, resolver)
            if topic and function:
                model.subscriptions.append((topic, function))
    for resource in resolver.resources.values():
        if isinstance(resource, Mapping) and resource.get("Type") == "AWS::Lambda::EventInvokeConfig":
            props = _mapping(resource.get("Properties"))
            target = _one(props.get("FunctionName"), model, resolver)
            if target in model.functions and _on_failure(props):
                model.functions[target].async_failure_handled = True
    return model


# -- functions ----------------------------------------------------------------------------------------------------
def _sam_function(
    model: Template, logical_id: str, props: Mapping[str, Any], globals_: Mapping[str, Any], base: Path
) -> None:
    resolver = model.resolver
    env = {
        **_mapping(_mapping(globals_.get("Environment")).get("Variables")),
        **_mapping(_mapping(props.get("Environment")).get("Variables")),
    }
    timeout = resolver.number(props.get("Timeout", globals_.get("Timeout", DEFAULT_LAMBDA_TIMEOUT)))
    invoke_config = _mapping(props.get("EventInvokeConfig") or globals_.get("EventInvokeConfig"))
    handled = bool(props.get("DeadLetterQueue") or globals_.get("DeadLetterQueue")) or _on_failure(invoke_config)
    code_uri = props.get("CodeUri", globals_.get("CodeUri"))
    inline = props.get("InlineCode")
    source = (
        inline
        if isinstance(inline, str)
        else _handler_source(code_uri, props.get("Handler", globals_.get("Handler")), base)
    )
    uses_kit = any(str(k).startswith("CALLBACK_KIT_") for k in env) or "callback_kit" in source
    model.functions[logical_id] = Function(logical_id, timeout, env, handled, uses_kit, _HAND_OFF in source)
    _durable(model, logical_id, props.get("DurableConfig", globals_.get("DurableConfig")))
    for event_name, event in _mapping(props.get("Events")).items():
        event = _mapping(event)
        kind, event_props = str(event.get("Type")), _mapping(event.get("Properties"))
        where = f"{logical_id}/Events/{event_name}"
        if kind == "SQS":
            queue = _one(event_props.get("Queue"), model, resolver)
            report = "ReportBatchItemFailures" in (event_props.get("FunctionResponseTypes") or ())
            model.queue_sources.append(QueueSource(where, logical_id, queue, logical_id, report))
        elif kind in ("EventBridgeRule", "CloudWatchEvent") and event_props.get("Pattern") is not None:
            bus = resolver.text(event_props.get("EventBusName", "default")) or "default"
            has_dlq = bool(_mapping(event_props.get("DeadLetterConfig")))
            pattern = _mapping(event_props.get("Pattern"))
            model.rule_targets.append(RuleTarget(where, logical_id, bus, pattern, logical_id, None, has_dlq))
        elif kind == "SNS":
            topic = _one(event_props.get("Topic"), model, resolver)
            if topic:
                model.subscriptions.append((topic, logical_id))


def _lambda_function(model: Template, logical_id: str, props: Mapping[str, Any]) -> None:
    env = dict(_mapping(_mapping(props.get("Environment")).get("Variables")))
    timeout = model.resolver.number(props.get("Timeout", DEFAULT_LAMBDA_TIMEOUT))
    handled = bool(_mapping(props.get("DeadLetterConfig")).get("TargetArn"))
    inline = _mapping(props.get("Code")).get("ZipFile")
    source = inline if isinstance(inline, str) else ""
    uses_kit = any(str(k).startswith("CALLBACK_KIT_") for k in env) or "callback_kit" in source
    model.functions[logical_id] = Function(logical_id, timeout, env, handled, uses_kit, _HAND_OFF in source)
    _durable(model, logical_id, props.get("DurableConfig"))


def _durable(model: Template, logical_id: str, config: Any) -> None:
    """Mark a function with a ``DurableConfig`` (SAM and CloudFormation spell it alike) as durable."""
    if isinstance(config, Mapping):
        function = model.functions[logical_id]
        function.durable = True
        function.execution_timeout = model.resolver.number(config.get("ExecutionTimeout"))


def _handler_source(code_uri: Any, handler: Any, base: Path) -> str:
    """The text of a Python handler's module (``CodeUri/module.py``), or ``""`` when it cannot be read.

    It tells a callback-kit worker (it imports ``callback_kit``) and one that hands its tokens off.
    """
    if not isinstance(code_uri, str) or not isinstance(handler, str) or "." not in handler:
        return ""
    module = base / code_uri / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")
    try:
        return module.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _on_failure(config: Mapping[str, Any]) -> bool:
    return bool(_mapping(_mapping(config.get("DestinationConfig")).get("OnFailure")).get("Destination"))


# -- EventBridge --------------------------------------------------------------------------------------------------
def _rule_targets(model: Template, logical_id: str, props: Mapping[str, Any], resolver: Resolver) -> None:
    bus = resolver.text(props.get("EventBusName", "default")) or "default"
    pattern = _json(props.get("EventPattern"))
    for index, target in enumerate(props.get("Targets") or ()):
        target = _mapping(target)
        ref = _one(target.get("Arn"), model, resolver)
        where = f"{logical_id}/Targets/{target.get('Id', index)}"
        has_dlq = bool(_mapping(target.get("DeadLetterConfig")).get("Arn"))
        function = ref if ref and _is(model, ref, (SAM_FUNCTION, LAMBDA_FUNCTION), "lambda") else None
        queue = ref if ref and _is(model, ref, "AWS::SQS::Queue", "sqs") else None
        model.rule_targets.append(RuleTarget(where, logical_id, bus, _mapping(pattern), function, queue, has_dlq))


# -- helpers ------------------------------------------------------------------------------------------------------
def _one(value: Any, model: Template, resolver: Resolver) -> str | None:
    """The logical id a property refers to, or its literal value (an ARN or name), or ``None``."""
    ids = referenced_ids(value) & set(resolver.resources)
    if ids:
        return sorted(ids)[0]
    text = resolver.text(value)
    if text and text in resolver.resources:
        return text
    return text


def _is(model: Template, ref: str, kinds: str | tuple[str, ...], service: str) -> bool:
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    if ref in model.resource_types:
        return model.resource_types[ref] in kinds
    match = _ARN_SERVICE.match(ref)
    return bool(match and match.group(1) == service)


def _json(value: Any) -> Any:
    """A JSON-typed property, which CloudFormation also accepts as a string holding the JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
