"""Read templates and ASL files: JSON, and YAML with CloudFormation's short-form intrinsics (``!Ref``, ``!Sub``...).

The short forms become the long ones (``!GetAtt Queue.Arn`` -> ``{"Fn::GetAtt": ["Queue", "Arn"]}``), so that the
rest of the checker reads one shape whichever way a template was written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, TypeAlias

from callback_kit.exceptions import CallbackKitError

Kind: TypeAlias = Literal["template", "asl"]


class UnreadableInputError(CallbackKitError, ValueError):
    """A path given to the checker does not exist, cannot be parsed, or is neither a template nor ASL."""


def _yaml_load(text: str) -> Any:
    """Parse YAML, turning CloudFormation's short-form tags into the long form.

    PyYAML is imported here, not at import time: it comes with the ``check`` extra, and JSON needs none of it.
    """
    try:
        import yaml
    except ImportError:  # pragma: no cover - depends on the installation
        raise UnreadableInputError(
            "reading YAML needs PyYAML: pip install 'callback-kit[check]' (JSON files need nothing more)"
        ) from None

    class CfnLoader(yaml.SafeLoader):
        """A safe YAML loader that understands CloudFormation's ``!Tag`` intrinsics."""

    def construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if suffix == "GetAtt" and isinstance(value, str):
            # The short form writes "Resource.Attribute" as one string; the long form is a list.
            value = value.split(".", 1)
        if suffix in ("Ref", "Condition"):
            return {suffix: value}
        return {f"Fn::{suffix}": value}

    CfnLoader.add_multi_constructor("!", construct_tag)
    try:
        return yaml.load(text, Loader=CfnLoader)  # noqa: S506 - a SafeLoader subclass: builds plain data only
    except yaml.YAMLError as exc:
        raise UnreadableInputError(f"neither JSON nor YAML: {exc}") from None


def parse_text(text: str, name: str = "<text>") -> Any:
    """Parse JSON or YAML (with CloudFormation tags) text.

    Raises:
        UnreadableInputError: neither parses.

    Example:
        >>> parse_text("Queue: !GetAtt OrderQueue.Arn")
        {'Queue': {'Fn::GetAtt': ['OrderQueue', 'Arn']}}
    """
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return _yaml_load(text)
    except UnreadableInputError as exc:
        raise UnreadableInputError(f"{name}: {exc}") from None


def load_file(path: str | Path) -> Any:
    """Read and parse one file.

    Raises:
        UnreadableInputError: it is missing, unreadable or unparseable.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableInputError(f"{path}: cannot read: {exc}") from None
    return parse_text(text, str(path))


def kind_of(document: Any) -> Kind | None:
    """Tell a CloudFormation/SAM template from an ASL definition, or neither.

    Example:
        >>> kind_of({"StartAt": "A", "States": {}}), kind_of({"Resources": {}}), kind_of([])
        ('asl', 'template', None)
    """
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("States"), dict) and "StartAt" in document:
        return "asl"
    if isinstance(document.get("Resources"), dict):
        return "template"
    return None
