"""Which functions of a template answer a state machine task: through its queue, bus, topic or function name."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from callback_kit.check.intrinsics import MARKER, referenced_ids
from callback_kit.check.template import RuleTarget, Template


def arguments(state: Mapping[str, Any]) -> Any:
    """A task's Parameters (JSONPath) or Arguments (JSONata)."""
    return state.get("Arguments", state.get("Parameters"))


def workers(state: Mapping[str, Any], template: Template) -> set[str]:
    """The logical ids of the functions that receive what this task sends.

    Example:
        >>> from callback_kit.check.template import read_template
        >>> sqs = {"Type": "SQS", "Properties": {"Queue": {"Fn::GetAtt": ["Q", "Arn"]}}}
        >>> w = {"Type": "AWS::Serverless::Function", "Properties": {"Events": {"E": sqs}}}
        >>> t = read_template({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}, "W": w}}, "t.yaml")
        >>> send = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
        >>> task = {"Resource": send, "Parameters": {"QueueUrl": "ck-ref:Q"}}
        >>> workers(task, t)
        {'W'}
    """
    resource = str(state.get("Resource", ""))
    args = arguments(state)
    args = args if isinstance(args, Mapping) else {}
    found: set[str] = set()
    if ":lambda:invoke" in resource:
        found |= referenced_ids(args.get("FunctionName")) & set(template.functions)
    elif ":sqs:sendMessage" in resource:
        found |= set(_queue_consumers(referenced_ids(args.get("QueueUrl")), template))
    elif ":sns:publish" in resource:
        topics = referenced_ids(args.get("TopicArn"))
        found |= {function for topic, function in template.subscriptions if topic in topics}
    elif ":events:putEvents" in resource:
        for entry in args.get("Entries") or ():
            if isinstance(entry, Mapping):
                found |= set(_event_consumers(entry, template))
    return found


def invoked_async(state: Mapping[str, Any], template: Template) -> set[str]:
    """The functions a ``lambda:invoke`` task invokes asynchronously (``InvocationType: Event``)."""
    args = arguments(state)
    if ":lambda:invoke" not in str(state.get("Resource", "")) or not isinstance(args, Mapping):
        return set()
    if args.get("InvocationType") != "Event":
        return set()
    return referenced_ids(args.get("FunctionName")) & set(template.functions)


def _queue_consumers(queues: set[str], template: Template) -> Iterator[str]:
    for source in template.queue_sources:
        if source.queue in queues and source.function in template.functions:
            yield source.function


def event_targets(state: Mapping[str, Any], template: Template) -> list[RuleTarget]:
    """The EventBridge rule targets that a ``events:putEvents`` task's entries can reach."""
    args = arguments(state)
    if ":events:putEvents" not in str(state.get("Resource", "")) or not isinstance(args, Mapping):
        return []
    entries = [e for e in args.get("Entries") or () if isinstance(e, Mapping)]
    return [
        target
        for target in template.rule_targets
        if any(
            _bus(target.bus) == _bus(e.get("EventBusName", "default")) and _matches(target.pattern, e) for e in entries
        )
    ]


#: What ECS puts on the default bus when a task changes state (the stop of a container task among them).
ECS_TASK_STATE_CHANGE = {"Source": "aws.ecs", "DetailType": "ECS Task State Change"}


def ecs_stop_targets(template: Template) -> list[RuleTarget]:
    """The rule targets that receive ECS Task State Change events: where a stranded-token reaper listens.

    Example:
        >>> from callback_kit.check.template import read_template
        >>> rule = {"Type": "EventBridgeRule", "Properties": {"Pattern": {"source": ["aws.ecs"]}}}
        >>> w = {"Type": "AWS::Serverless::Function", "Properties": {"Events": {"Stopped": rule}}}
        >>> [t.where for t in ecs_stop_targets(read_template({"Resources": {"Reaper": w}}, "t.yaml"))]
        ['Reaper/Events/Stopped']
    """
    return [
        target
        for target in template.rule_targets
        if _bus(target.bus) == "default" and _matches(target.pattern, ECS_TASK_STATE_CHANGE)
    ]


def _event_consumers(entry: Mapping[str, Any], template: Template) -> Iterator[str]:
    bus = _bus(entry.get("EventBusName", "default"))
    for target in template.rule_targets:
        if _bus(target.bus) != bus or not _matches(target.pattern, entry):
            continue
        if target.function in template.functions:
            yield target.function
        elif target.queue:
            yield from _queue_consumers({target.queue}, template)


def _bus(value: Any) -> str:
    """A bus named by a marker (``ck-ref:Bus.Arn``), an ARN or a name, as one comparable name."""
    text = str(value)
    if text.startswith(MARKER):
        return text[len(MARKER) :].split(".", 1)[0]
    return text.rsplit("/", 1)[-1] if text.startswith("arn:") else text


def _matches(pattern: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    """Whether a rule's pattern can match the entry's literal Source and DetailType (anything else: assume so)."""
    for field, key in (("source", "Source"), ("detail-type", "DetailType")):
        wanted, value = pattern.get(field), entry.get(key)
        if not isinstance(wanted, list) or not isinstance(value, str):
            continue
        if all(isinstance(w, str) for w in wanted) and value not in wanted:
            return False
    return True
