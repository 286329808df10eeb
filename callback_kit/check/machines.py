"""State machine definitions from template resources: ``DefinitionUri`` files, ``Definition``, ``DefinitionString``.

``DefinitionSubstitutions`` are applied to the definition's text (for a file or a string) or to its strings (for an
inline ``Definition``) before it is read, so that ``"${QueueUrl}"`` names the queue resource it stands for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callback_kit.check.intrinsics import Resolver, substitute
from callback_kit.check.loader import UnreadableInputError, parse_text

SAM_MACHINE, SFN_MACHINE = "AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"


@dataclass
class Machine:
    """A state machine: its definition (``None`` if unreadable) and where findings about its states point."""

    logical_id: str | None
    path: str
    definition: Mapping[str, Any] | None
    express: bool = False
    problem: str | None = None


def read_machine(
    logical_id: str, kind: str, props: Mapping[str, Any], base: Path, path: str, resolver: Resolver
) -> Machine:
    """Read the state machine of one template resource (``definition`` is ``None`` when it cannot be read).

    Example:
        >>> props = {"Definition": {"StartAt": "A", "States": {"A": {"Type": "Pass", "Comment": "${Q}", "End": True}}},
        ...          "DefinitionSubstitutions": {"Q": {"Ref": "Queue"}}}
        >>> m = read_machine("M", SFN_MACHINE, props, Path("."), "t.yaml", Resolver({"Resources": {"Queue": {}}}))
        >>> m.definition["States"]["A"]["Comment"]
        'ck-ref:Queue'
    """
    express = str(props.get("Type") or props.get("StateMachineType") or "STANDARD").upper() == "EXPRESS"
    values = {
        str(name): text for name, value in _substitutions(props).items() if (text := resolver.text(value)) is not None
    }
    try:
        if kind == SAM_MACHINE and isinstance(props.get("DefinitionUri"), str):
            uri = str(props["DefinitionUri"])
            if uri.startswith("s3://"):
                return Machine(logical_id, path, None, express)
            file = base / uri
            text = _read(file)
            return Machine(logical_id, str(file), _parse(substitute(text, values), str(file)), express)
        if "Definition" in props:
            return Machine(logical_id, path, _substituted(props["Definition"], values), express)
        if "DefinitionString" in props:
            text = resolver.text(props["DefinitionString"])
            if text is None:
                return Machine(
                    logical_id, path, None, express, "DefinitionString uses intrinsics that cannot be resolved"
                )
            return Machine(logical_id, path, _parse(substitute(text, values), path), express)
    except UnreadableInputError as exc:
        return Machine(logical_id, path, None, express, str(exc))
    return Machine(logical_id, path, None, express)


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableInputError(f"DefinitionUri {file}: cannot read: {exc}") from None


def _parse(text: str, name: str) -> Mapping[str, Any]:
    document = parse_text(text, name)
    if not isinstance(document, Mapping) or not isinstance(document.get("States"), Mapping):
        raise UnreadableInputError(f"{name}: not a state machine definition (no States)")
    return document


def _substituted(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return substitute(value, values)
    if isinstance(value, Mapping):
        return {k: _substituted(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substituted(v, values) for v in value]
    return value


def _substitutions(props: Mapping[str, Any]) -> Mapping[str, Any]:
    value = props.get("DefinitionSubstitutions")
    return value if isinstance(value, Mapping) else {}
