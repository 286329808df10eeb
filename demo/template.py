"""Read the SAM application of a callback-kit checkout: find it, load ``template.yaml``, resolve intrinsics.

The demo runs the app's own files, so this module only reads them: it finds the checkout, loads the template
with a YAML loader that keeps CloudFormation's short-form tags (``!Ref``, ``!GetAtt``, ``!Sub``, ...) as the
long-form dicts CloudFormation itself uses, and resolves ``Ref``/``Fn::GetAtt``/``Fn::Sub`` against the
resources the demo created in moto.

Example:
    >>> app = SamApp.load(find_checkout())                                   # doctest: +SKIP
    >>> sorted(app.resources_of_type("AWS::StepFunctions::Activity"))  # doctest: +SKIP
    ['AgeCheckActivity']
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CheckoutNotFoundError", "SamApp", "TemplateError", "find_checkout", "load_template", "resolve"]

#: The files that make a directory a callback-kit checkout the demo can run.
CHECKOUT_MARKERS = ("template.yaml", "statemachine", "handlers")

_SUB_PLACEHOLDER = re.compile(r"\$\{([^}!]+)\}")


class TemplateError(Exception):
    """The template lacks something the demo needs, or uses an intrinsic it cannot resolve."""


class CheckoutNotFoundError(TemplateError):
    """No callback-kit checkout (template.yaml, statemachine/, handlers/) was found."""


def _is_checkout(path: Path) -> bool:
    return all((path / marker).exists() for marker in CHECKOUT_MARKERS)


def find_checkout(root: Path | None = None, *, start: Path | None = None) -> Path:
    """Return the root of the callback-kit checkout whose SAM app the demo runs.

    Looks at ``root`` if given; else at the checkout this package sits in,
    then at the current directory and its parents.

    Raises:
        CheckoutNotFoundError: with a message that says where it looked and what to do.

    Example:
        >>> find_checkout(Path("/work/main"))                                # doctest: +SKIP
        PosixPath('/work/main')
    """
    wanted = ", ".join(CHECKOUT_MARKERS)
    if root is not None:
        if _is_checkout(root):
            return root.resolve()
        raise CheckoutNotFoundError(f"{root} is not a callback-kit checkout: it should hold {wanted}")
    package_root = Path(__file__).resolve().parents[1]
    here = (start or Path.cwd()).resolve()
    candidates = [package_root, here, *here.parents]
    for candidate in candidates:
        if _is_checkout(candidate):
            return candidate
    raise CheckoutNotFoundError(
        "the demo runs the SAM app of a callback-kit checkout, and none was found "
        f"(looked for {wanted} in {package_root}, in {here} and its parents). "
        "Clone the repository and run scripts/demo from it, or pass --root PATH."
    )


def _cfn_loader() -> type[Any]:
    """A SafeLoader subclass that turns ``!Tag value`` into CloudFormation's long form."""
    import yaml

    class CfnLoader(yaml.SafeLoader):
        """SafeLoader that understands CloudFormation's short-form intrinsic functions."""

    def construct(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "GetAtt" and isinstance(value, str):
            logical_id, _, attribute = value.partition(".")
            return {"Fn::GetAtt": [logical_id, attribute]}
        return {f"Fn::{suffix}": value}

    CfnLoader.add_multi_constructor("!", construct)
    return CfnLoader


def load_template(path: Path) -> dict[str, Any]:
    """Load a CloudFormation/SAM template, keeping short-form intrinsics as long-form dicts.

    Example:
        >>> load_template(Path("template.yaml"))["Transform"]                # doctest: +SKIP
        'AWS::Serverless-2016-10-31'
    """
    import yaml

    with path.open(encoding="utf-8") as stream:
        loaded = yaml.load(stream, Loader=_cfn_loader())  # noqa: S506 - a SafeLoader subclass
    if not isinstance(loaded, dict) or not isinstance(loaded.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return loaded


def resolve(value: Any, refs: Mapping[str, Mapping[str, str]]) -> Any:
    """Resolve ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` in ``value`` against ``refs``.

    ``refs`` maps a logical id (or a pseudo parameter such as ``AWS::StackName``, or a template parameter) to
    its attributes; ``"Ref"`` is what ``!Ref`` returns.

    Raises:
        TemplateError: an intrinsic names something not in ``refs``, or is not supported.

    Example:
        >>> resolve({"Fn::Sub": "${AWS::StackName}-x"}, {"AWS::StackName": {"Ref": "demo"}})
        'demo-x'
        >>> resolve({"Fn::GetAtt": ["Q", "Arn"]}, {"Q": {"Ref": "url", "Arn": "arn:q"}})
        'arn:q'
    """
    if isinstance(value, list):
        return [resolve(item, refs) for item in value]
    if not isinstance(value, Mapping):
        return value
    if len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return _attribute(refs, str(arg), "Ref")
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return _attribute(refs, str(logical_id), str(attribute))
        if key == "Fn::Sub":
            if not isinstance(arg, str):
                raise TemplateError("the demo supports only the one-argument form of Fn::Sub")
            return _SUB_PLACEHOLDER.sub(lambda m: _sub_value(refs, m.group(1)), arg)
        if key.startswith("Fn::"):
            raise TemplateError(f"the demo cannot resolve {key}")
    return {k: resolve(v, refs) for k, v in value.items()}


def _sub_value(refs: Mapping[str, Mapping[str, str]], name: str) -> str:
    logical_id, dot, attribute = name.partition(".")
    return _attribute(refs, logical_id, attribute if dot else "Ref")


def _attribute(refs: Mapping[str, Mapping[str, str]], logical_id: str, attribute: str) -> str:
    try:
        return refs[logical_id][attribute]
    except KeyError:
        raise TemplateError(f"cannot resolve {logical_id}.{attribute}: not created in the simulator") from None


@dataclass
class SamApp:
    """The SAM application of a checkout: its root, its template and its state machine.

    Attributes:
        root: the checkout's root directory.
        template: the loaded template (intrinsics as long-form dicts).
        stack_name: the stack name ``AWS::StackName`` resolves to.
    """

    root: Path
    template: dict[str, Any]
    stack_name: str = "callback-kit"
    refs: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, *, stack_name: str = "callback-kit", region: str = "us-east-1") -> SamApp:
        """Load ``root/template.yaml`` and seed the pseudo parameters and the parameters' defaults."""
        app = cls(root, load_template(root / "template.yaml"), stack_name)
        app.refs.update(
            {
                "AWS::StackName": {"Ref": stack_name},
                "AWS::Region": {"Ref": region},
                "AWS::AccountId": {"Ref": "123456789012"},
                "AWS::Partition": {"Ref": "aws"},
                "AWS::URLSuffix": {"Ref": "amazonaws.com"},
            }
        )
        for name, spec in (app.template.get("Parameters") or {}).items():
            if isinstance(spec, Mapping) and "Default" in spec:
                app.refs[name] = {"Ref": str(spec["Default"])}
        return app

    def resources_of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """The resources of one type, by logical id, in template order."""
        resources: dict[str, Any] = self.template["Resources"]
        return {
            logical_id: dict(spec.get("Properties") or {})
            for logical_id, spec in resources.items()
            if isinstance(spec, Mapping) and spec.get("Type") == kind
        }

    def globals_of(self, kind: str) -> dict[str, Any]:
        """The ``Globals`` section for ``Function``, ``StateMachine``, ..."""
        return dict((self.template.get("Globals") or {}).get(kind) or {})

    def add(self, logical_id: str, **attributes: str) -> None:
        """Record what a created resource's ``Ref`` and attributes resolve to."""
        self.refs[logical_id] = dict(attributes)

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsics in ``value`` against the resources created so far."""
        return resolve(value, self.refs)

    def physical_name(self, logical_id: str, properties: Mapping[str, Any], key: str) -> str:
        """The resource's name: its ``key`` property (resolved) if set, else ``<stack>-<logical id>``."""
        if properties.get(key) is not None:
            return str(self.resolve(properties[key]))
        return f"{self.stack_name}-{logical_id}"

    def state_machine(self) -> tuple[str, Path, dict[str, Any]]:
        """The one ``AWS::Serverless::StateMachine``: its name, its ASL file, its ``DefinitionSubstitutions``.

        Raises:
            TemplateError: none or several state machines, or one without ``DefinitionUri``.
        """
        machines = self.resources_of_type("AWS::Serverless::StateMachine")
        if len(machines) != 1:
            raise TemplateError(f"the demo runs exactly one AWS::Serverless::StateMachine; found {len(machines)}")
        ((logical_id, props),) = machines.items()
        uri = props.get("DefinitionUri")
        if not isinstance(uri, str):
            raise TemplateError(f"{logical_id} must name its ASL file in DefinitionUri (a local path)")
        path = self.root / uri
        if not path.is_file():
            raise TemplateError(f"{logical_id}'s DefinitionUri {uri} does not exist under {self.root}")
        name = self.physical_name(logical_id, props, "Name")
        return name, path, dict(props.get("DefinitionSubstitutions") or {})
