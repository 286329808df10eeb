"""Walk an Amazon States Language definition: every state at any depth, with what encloses it.

Map states (inline and distributed, ``ItemProcessor`` or the older ``Iterator``) and Parallel branches are entered
recursively. Each state comes with its query language (JSONPath or JSONata, inherited from the top level unless the
state sets its own), the Map and Parallel states around it, and whether it runs in an Express workflow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

#: Resource of a service integration that waits for a callback: ``arn:aws:states:::sqs:sendMessage.waitForTaskToken``.
#: The partition may still be a placeholder, ``arn:${AWS::Partition}:states:::...``, in an ASL file for Fn::Sub.
_WAIT_FOR_TOKEN = re.compile(r"^arn:(\$\{[^}]*\}|[^:]*):states:::.+\.waitForTaskToken$")
#: An activity ARN, or a reference the template resolved to an AWS::StepFunctions::Activity.
_ACTIVITY = re.compile(r"^arn:(\$\{[^}]*\}|[^:]*):states:[^:]*:[^:]*:activity:")
#: A substitution left unresolved (a standalone ASL file): ``${OrderActivityArn}``.
_PLACEHOLDER = re.compile(r"^\$\{([^}]+)\}$")

CallbackKind = Literal["token", "activity"]


@dataclass(frozen=True)
class StateRef:
    """One state and its surroundings.

    Attributes:
        path: the state names from the top level down (``("Fan out", "Ask")`` for a state in a Map).
        state: the state's definition.
        query_language: ``JSONPath`` or ``JSONata``.
        enclosing: the Map and Parallel states around it, outermost first.
        express: whether it runs in an Express workflow (the machine's type, or a distributed Map's children).
    """

    path: tuple[str, ...]
    state: Mapping[str, Any]
    query_language: str
    enclosing: tuple[Mapping[str, Any], ...] = ()
    express: bool = False

    @property
    def name(self) -> str:
        """The path joined with ``/``, as findings show it."""
        return "/".join(self.path)

    @property
    def maps(self) -> tuple[Mapping[str, Any], ...]:
        """The enclosing Map states, outermost first."""
        return tuple(s for s in self.enclosing if s.get("Type") == "Map")


def walk(definition: Mapping[str, Any], *, express: bool = False) -> Iterator[StateRef]:
    """Every state of a definition, depth first.

    Args:
        definition: the ASL document (``StartAt``, ``States``).
        express: the state machine's type is EXPRESS.

    Example:
        >>> inner = {"StartAt": "Ask", "States": {"Ask": {"Type": "Task", "End": True}}}
        >>> asl = {"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "ItemProcessor": inner, "End": True}}}
        >>> [(ref.name, len(ref.maps)) for ref in walk(asl)]
        [('Fan', 0), ('Fan/Ask', 1)]
    """
    language = str(definition.get("QueryLanguage") or "JSONPath")
    yield from _walk_states(definition, (), language, (), express)


def _walk_states(
    machine: Mapping[str, Any],
    prefix: tuple[str, ...],
    language: str,
    enclosing: tuple[Mapping[str, Any], ...],
    express: bool,
) -> Iterator[StateRef]:
    states = machine.get("States")
    if not isinstance(states, Mapping):
        return
    language = str(machine.get("QueryLanguage") or language)
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        path = (*prefix, str(name))
        own_language = str(state.get("QueryLanguage") or language)
        yield StateRef(path, state, own_language, enclosing, express)
        kind = state.get("Type")
        if kind == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if isinstance(processor, Mapping):
                config = processor.get("ProcessorConfig")
                child_express = express
                if isinstance(config, Mapping) and config.get("Mode") == "DISTRIBUTED":
                    # A distributed Map starts child executions of their own type (STANDARD unless EXPRESS).
                    child_express = config.get("ExecutionType") == "EXPRESS"
                yield from _walk_states(processor, path, own_language, (*enclosing, state), child_express)
        elif kind == "Parallel":
            for branch in state.get("Branches") or ():
                if isinstance(branch, Mapping):
                    yield from _walk_states(branch, path, own_language, (*enclosing, state), express)


def callback_kind(state: Mapping[str, Any]) -> CallbackKind | None:
    """``token`` for a ``.waitForTaskToken`` task, ``activity`` for an activity task, else ``None``.

    Example:
        >>> callback_kind({"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken"})
        'token'
        >>> callback_kind({"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:check"})
        'activity'
        >>> callback_kind({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke"}) is None
        True
    """
    if state.get("Type") != "Task":
        return None
    resource = state.get("Resource")
    if not isinstance(resource, str):
        return None
    if _WAIT_FOR_TOKEN.match(resource):
        return "token"
    if _ACTIVITY.match(resource):
        return "activity"
    placeholder = _PLACEHOLDER.match(resource)
    if placeholder and "activity" in placeholder.group(1).lower():
        # A standalone ASL file cannot say what ${AgeCheckActivityArn} is; its name is the best hint there is.
        return "activity"
    return None


def is_expression(value: Any) -> bool:
    """Whether a value is a JSONata expression (``{% ... %}``), whose value is only known at run time.

    Example:
        >>> is_expression("{% $states.input.timeout %}"), is_expression(60)
        (True, False)
    """
    return isinstance(value, str) and value.strip().startswith("{%") and value.strip().endswith("%}")


def integer(value: Any) -> int | None:
    """A field's value as an int when it is a literal number, else ``None`` (paths, expressions, placeholders).

    Example:
        >>> integer(60), integer("90"), integer("{% $x %}"), integer(True)
        (60, 90, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def caught_errors(ref: StateRef) -> set[str]:
    """The error names caught by the state's own Catch and by every enclosing Map/Parallel (where errors rise to)."""
    names: set[str] = set()
    for state in (ref.state, *ref.enclosing):
        for catcher in state.get("Catch") or ():
            if isinstance(catcher, Mapping):
                names.update(str(e) for e in catcher.get("ErrorEquals") or ())
    return names
