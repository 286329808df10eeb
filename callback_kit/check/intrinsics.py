"""Resolve CloudFormation intrinsics as far as a template alone allows.

A parameter resolves to its ``Default``; a pseudo parameter to a sample value; ``Ref``/``GetAtt`` of a resource to
a marker, ``ck-ref:LogicalId`` or ``ck-ref:LogicalId.Attribute``, that later tells which resource a state machine
task names (its queue, its function, its bus). ``Fn::Sub`` and ``Fn::Join`` are rendered with those values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MARKER = "ck-ref:"
_MARKER_RE = re.compile(r"ck-ref:([A-Za-z0-9]+)")
_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]+)\}")
PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "stack",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": "",
}


class Resolver:
    """Resolves values of one template.

    Example:
        >>> r = Resolver({"Parameters": {"Beat": {"Default": 20}}, "Resources": {"Q": {"Type": "AWS::SQS::Queue"}}})
        >>> r.text({"Ref": "Beat"}), r.text({"Fn::GetAtt": ["Q", "Arn"]}), r.text({"Fn::Sub": "${Q}/x"})
        ('20', 'ck-ref:Q.Arn', 'ck-ref:Q/x')
    """

    def __init__(self, template: Mapping[str, Any]) -> None:
        params = template.get("Parameters")
        resources = template.get("Resources")
        self.parameters: Mapping[str, Any] = params if isinstance(params, Mapping) else {}
        self.resources: Mapping[str, Any] = resources if isinstance(resources, Mapping) else {}

    def text(self, value: Any, variables: Mapping[str, Any] | None = None) -> str | None:
        """The value as a string, with references as markers; ``None`` when it cannot be worked out."""
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (str, int, float)):
            return str(value)
        if not isinstance(value, Mapping) or len(value) != 1:
            return None
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return self._ref(str(arg))
        if fn == "Fn::GetAtt":
            parts = arg.split(".", 1) if isinstance(arg, str) else list(arg) if isinstance(arg, list) else []
            return f"{MARKER}{parts[0]}.{parts[1]}" if len(parts) == 2 else None
        if fn == "Fn::Sub":
            return self._sub(arg, variables)
        if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], list):
            pieces = [self.text(part, variables) for part in arg[1]]
            return None if any(p is None for p in pieces) else str(arg[0]).join(p or "" for p in pieces)
        return None

    def number(self, value: Any) -> float | None:
        """The value as a number, when it resolves to one (a literal, or a parameter's default)."""
        text = self.text(value)
        try:
            return float(text) if text is not None else None
        except ValueError:
            return None

    def _ref(self, name: str) -> str | None:
        if name in PSEUDO:
            return PSEUDO[name]
        param = self.parameters.get(name)
        if isinstance(param, Mapping):
            default = param.get("Default")
            return None if default is None or isinstance(default, (list, dict)) else str(default)
        resource = self.resources.get(name)
        if isinstance(resource, Mapping) and resource.get("Type") == "AWS::StepFunctions::Activity":
            # An activity's Ref is its ARN: keep the ARN's shape, so that a task naming it reads as an activity task.
            return f"arn:aws:states:us-east-1:123456789012:activity:{MARKER}{name}"
        return f"{MARKER}{name}"

    def _sub(self, arg: Any, variables: Mapping[str, Any] | None) -> str | None:
        if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], Mapping):
            arg, variables = arg[0], {**(variables or {}), **arg[1]}
        if not isinstance(arg, str):
            return None
        scope = variables or {}

        def replace(match: re.Match[str]) -> str:
            if match.group(1):  # ${!Literal} stays ${Literal}
                return "${" + match.group(2) + "}"
            name = match.group(2)
            if name in scope:
                return self.text(scope[name]) or f"{MARKER}{name}"
            if "." in name and name.split(".", 1)[0] in self.resources:
                return f"{MARKER}{name}"
            return self._ref(name) or ""

        return _SUB_VARIABLE.sub(replace, arg)


def referenced_ids(value: Any) -> set[str]:
    """The logical ids a (resolved or raw) value refers to: markers in strings, ``Ref``/``GetAtt`` in dicts.

    Example:
        >>> sorted(referenced_ids({"QueueUrl": "ck-ref:Orders", "Fn": {"Fn::GetAtt": ["Worker", "Arn"]}}))
        ['Orders', 'Worker']
    """
    found: set[str] = set()
    if isinstance(value, str):
        found.update(_MARKER_RE.findall(value))
    elif isinstance(value, Mapping):
        if set(value) == {"Ref"} and isinstance(value["Ref"], str):
            found.add(value["Ref"])
        elif set(value) == {"Fn::GetAtt"}:
            arg = value["Fn::GetAtt"]
            first = arg.split(".", 1)[0] if isinstance(arg, str) else arg[0] if isinstance(arg, list) and arg else None
            if isinstance(first, str):
                found.add(first)
        for item in value.values():
            found |= referenced_ids(item)
    elif isinstance(value, list):
        for item in value:
            found |= referenced_ids(item)
    return found


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace ``${Name}`` placeholders (DefinitionSubstitutions) whose value is known; leave the others.

    Example:
        >>> substitute('{"Q": "${Queue}", "N": "${Unknown}"}', {"Queue": "ck-ref:Orders"})
        '{"Q": "ck-ref:Orders", "N": "${Unknown}"}'
    """
    return _SUB_VARIABLE.sub(lambda m: values.get(m.group(2), m.group(0)) if not m.group(1) else m.group(0), text)
