"""State machine definitions the simulator refuses, because moto cannot run them as AWS would.

moto's interpreter evaluates JSONPath only: a JSONata state (``"QueryLanguage": "JSONata"``, at the top or on a
state) does not run as written. ``ecs:runTask`` cannot start a container, so its task fails ``States.Runtime``
or, with ``.waitForTaskToken``, waits for a callback no container will send. Rather than let a test fail for
the simulator's reasons or hang until TimeoutSeconds, the simulator refuses such a definition when it is
created, saying which state and why.

Example:
    >>> unsupported({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
    ["the state machine's QueryLanguage is JSONata: the simulator (moto) evaluates JSONPath only"]
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["UnsupportedDefinitionError", "check_definition", "unsupported"]

_JSONATA = "the simulator (moto) evaluates JSONPath only"
_ECS = (
    "the simulator cannot run containers (moto fails the task States.Runtime); test the container's worker "
    "on its own, e.g. with `callback-kit run`, and the rest of the state machine with a Lambda or SQS task"
)


class UnsupportedDefinitionError(ValueError):
    """The definition uses something the local simulator cannot run faithfully."""


def _states(states: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every state, nested ones included (Parallel branches, Map iterators and item processors)."""
    for name, state in states.items():
        if not isinstance(state, Mapping):
            continue
        yield name, state
        for branch in state.get("Branches") or []:
            if isinstance(branch, Mapping):
                yield from _states(branch.get("States") or {})
        for key in ("Iterator", "ItemProcessor"):
            inner = state.get(key)
            if isinstance(inner, Mapping):
                yield from _states(inner.get("States") or {})


def unsupported(definition: Mapping[str, Any]) -> list[str]:
    """Return one line per feature of ``definition`` that the simulator refuses (empty: it can run it).

    Example:
        >>> unsupported({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
        []
    """
    problems: list[str] = []
    if definition.get("QueryLanguage") == "JSONata":
        problems.append(f"the state machine's QueryLanguage is JSONata: {_JSONATA}")
    for name, state in _states(definition.get("States") or {}):
        if state.get("QueryLanguage") == "JSONata":
            problems.append(f"state {name!r} uses JSONata: {_JSONATA}")
        resource = state.get("Resource")
        if isinstance(resource, str) and resource.startswith("arn:aws:states:::ecs:runTask"):
            problems.append(f"state {name!r} runs {resource.split(':::')[-1]}: {_ECS}")
    return problems


def check_definition(definition: str | Mapping[str, Any]) -> None:
    """Raise if the simulator cannot run ``definition`` faithfully; leave malformed JSON to moto's own checks.

    Raises:
        UnsupportedDefinitionError: the definition uses JSONata or ``ecs:runTask``.

    Example:
        >>> check_definition('{"StartAt": "A", "States": {"A": {"Type": "Task",'
        ...                  ' "Resource": "arn:aws:states:::ecs:runTask.waitForTaskToken", "End": true}}}')
        Traceback (most recent call last):
        ...
        callback_kit.simulator.definitions.UnsupportedDefinitionError: ... state 'A' runs ecs:runTask.waitFor...
    """
    if isinstance(definition, str):
        try:
            parsed = json.loads(definition)
        except ValueError:
            return
    else:
        parsed = definition
    if not isinstance(parsed, Mapping):
        return
    problems = unsupported(parsed)
    if problems:
        raise UnsupportedDefinitionError(
            "callback-kit's local simulator refuses this state machine rather than run it unlike AWS: "
            + "; ".join(problems)
        )
