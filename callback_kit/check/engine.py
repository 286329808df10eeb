"""Run every rule over files and directories: the entry point behind the command, the API and the plugins."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from callback_kit.check.asl import StateRef, callback_kind, walk
from callback_kit.check.findings import Finding
from callback_kit.check.links import ecs_stop_targets, event_targets, invoked_async, workers
from callback_kit.check.loader import UnreadableInputError, kind_of, load_file
from callback_kit.check.machines import Machine
from callback_kit.check.rules_infra import async_rules, queue_rules
from callback_kit.check.rules_states import Worker, callback_rules, is_container_task
from callback_kit.check.template import Template, read_template

ENV_HEARTBEAT_INTERVAL = "CALLBACK_KIT_HEARTBEAT_INTERVAL"
#: callback-kit's heartbeat interval when a worker does not set one (callback_kit.handler's default).
DEFAULT_HEARTBEAT_INTERVAL = 30.0
#: Where the interval came from when nothing told it (shown in the finding).
ASSUMED_DEFAULT = (
    f"callback-kit's default of {DEFAULT_HEARTBEAT_INTERVAL:g} s, assumed since no heartbeat interval was given: "
    "pass --heartbeat-interval if the worker beats at another rate"
)
#: What a directory is searched for.
_TEMPLATE_NAMES = ("template.yaml", "template.yml", "template.json")
_ASL_SUFFIXES = (".asl.json", ".asl.yaml", ".asl.yml")
#: ``callback-kit: ignore CK002, CK005`` in a state's Comment (or a resource's Metadata) silences those codes there.
_IGNORE = re.compile(r"callback-kit:\s*ignore\s+((?:CK\d{3}[\s,]*)+)", re.IGNORECASE)


def check_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    ignore: Iterable[str] = (),
    heartbeat_interval: float | None = None,
) -> list[Finding]:
    """Check templates, ASL files and directories of them; return the findings, sorted.

    Args:
        paths: SAM/CloudFormation templates, ``*.asl.json``/``*.asl.yaml`` files, or directories (searched for
            ``template.yaml|yml|json`` and ASL files; an ASL file a template loads is checked with it, once).
        ignore: rule codes not to report.
        heartbeat_interval: the heartbeat interval of workers the template does not show (activity workers,
            standalone ASL files); ``None`` assumes callback-kit's default of 30 s for them, and CK004's message
            says so. Workers a template shows that are not written with callback-kit are not guessed at.

    Raises:
        UnreadableInputError: a path is missing, unparseable, or neither a template nor a state machine.

    Example:
        >>> import json, pathlib, tempfile
        >>> task = {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        ...         "Parameters": {"QueueUrl": "q", "MessageBody": {"TaskToken.$": "$$.Task.Token"}}, "End": True}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     asl = pathlib.Path(tmp, "ask.asl.json")
        ...     _ = asl.write_text(json.dumps({"StartAt": "Ask", "States": {"Ask": task}}))
        ...     print([f.code for f in check_paths([asl])])
        ['CK001', 'CK002', 'CK005']
    """
    files = list(_expand([Path(p) for p in paths]))
    documents = [(file, load_file(file)) for file in files]
    findings: set[Finding] = set()
    loaded_by_templates: set[Path] = set()
    for file, document in documents:
        if kind_of(document) == "template":
            template = read_template(document, str(file))
            loaded_by_templates.update(Path(m.path).resolve() for m in template.machines if m.logical_id)
            findings.update(check_template(template, heartbeat_interval))
    for file, document in documents:
        kind = kind_of(document)
        if kind is None:
            raise UnreadableInputError(f"{file}: neither a CloudFormation/SAM template nor a state machine definition")
        if kind == "asl" and file.resolve() not in loaded_by_templates:
            machine = Machine(None, str(file), document)
            findings.update(check_machine(machine, None, heartbeat_interval))
    skip = set(ignore)
    return sorted((f for f in findings if f.code not in skip), key=_order)


def _order(finding: Finding) -> tuple[str, ...]:
    return (finding.path, finding.where, finding.code, finding.level, finding.message, finding.resource or "")


def check_template(template: Template, heartbeat_interval: float | None = None) -> Iterator[Finding]:
    """The findings of one template: its state machines' states and the resources around them."""
    all_workers: set[str] = set()
    async_callers: dict[str, str] = {}
    token_targets: set[str] = set()
    for machine in template.machines:
        yield from check_machine(machine, template, heartbeat_interval)
        for ref in _states(machine):
            if callback_kind(ref.state) != "token":
                continue  # a plain sns:publish or lambda:invoke carries no token: its receivers are not workers
            all_workers |= workers(ref.state, template)
            token_targets |= {t.where for t in event_targets(ref.state, template)}
            for function in invoked_async(ref.state, template):
                async_callers.setdefault(function, f"{machine.logical_id}/{ref.name} with InvocationType Event")
    for raw in (*queue_rules(template), *async_rules(template, all_workers, async_callers, token_targets)):
        if raw.code not in _ignored_in_metadata(template, raw.resource):
            yield Finding(template.path, raw.where, raw.code, raw.level, raw.message, raw.fix, raw.resource)
    yield from _reaper_rule(template)


def _reaper_rule(template: Template) -> Iterator[Finding]:
    """CK012: container tasks whose stops no rule routes to a reaper (their container alone can answer them)."""
    if ecs_stop_targets(template):
        return
    for machine in template.machines:
        if machine.logical_id is not None and "CK012" in _ignored_in_metadata(template, machine.logical_id):
            continue
        inline = machine.path == template.path
        for ref in _states(machine):
            if not is_container_task(ref.state) or "CK012" in _ignored(ref.state.get("Comment")):
                continue
            yield Finding(
                machine.path,
                f"{machine.logical_id}/{ref.name}" if inline else ref.name,
                "CK012",
                "warning",
                "an ecs:runTask.waitForTaskToken task, and no EventBridge rule in the template routes ECS Task State "
                "Change events to a reaper: a container that never starts or is killed before it answers leaves the "
                "task waiting until TimeoutSeconds",
                "add a rule on source aws.ecs, detail-type ECS Task State Change, lastStatus STOPPED targeting a "
                "function whose handler is callback_kit.reaper.handler (see docs/activity.md, Containers)",
                machine.logical_id,
            )


def check_machine(machine: Machine, template: Template | None, heartbeat_interval: float | None) -> Iterator[Finding]:
    """The findings of one state machine's states."""
    if machine.problem or machine.definition is None:
        if machine.problem:
            yield Finding(
                machine.path,
                machine.logical_id or "-",
                "CK000",
                "error",
                f"cannot read the definition: {machine.problem}",
                "fix the definition so that it parses as JSON or YAML with a States object",
                machine.logical_id,
            )
        return
    inline = template is not None and machine.path == template.path
    for ref in _states(machine):
        worker = _worker(ref, template, heartbeat_interval)
        ignored = _ignored(ref.state.get("Comment"))
        where = f"{machine.logical_id}/{ref.name}" if inline else ref.name
        for code, level, message, fix in callback_rules(ref, machine.definition, worker):
            if code not in ignored:
                yield Finding(machine.path, where, code, level, message, fix, machine.logical_id)


def _states(machine: Machine) -> Iterator[StateRef]:
    if machine.definition is not None:
        yield from walk(machine.definition, express=machine.express)


def _worker(ref: StateRef, template: Template | None, heartbeat_interval: float | None) -> Worker | None:
    """The heartbeat interval of the task's worker: a callback-kit function of the template, the one given, or
    callback-kit's default when nothing shows the worker (``None``: the template's workers are not callback-kit)."""
    shown: set[str] = set()
    if template is not None:
        intervals: list[Worker] = []
        shown = workers(ref.state, template)
        durable = [template.functions[name] for name in sorted(shown) if template.functions[name].durable]
        if durable:
            # A durable worker beats at no interval at all while it is suspended, whatever it is written with.
            limits = [f.execution_timeout for f in durable]
            longest = None if any(t is None for t in limits) else max(t for t in limits if t is not None)
            names = ", ".join(f.logical_id for f in durable)
            return Worker(0, f"{names}: a durable function", durable=True, longest_wait=longest)
        for name in sorted(shown):
            function = template.functions[name]
            if not function.callback_kit:
                continue
            if function.hands_off:
                return Worker(0, f"{name} calls ck.hand_off()", hands_off=True)
            value = function.env.get(ENV_HEARTBEAT_INTERVAL)
            seconds = template.resolver.number(value) if value is not None else None
            if seconds is None:
                intervals.append(Worker(DEFAULT_HEARTBEAT_INTERVAL, f"{name}: callback-kit's default"))
            else:
                intervals.append(Worker(seconds, f"{name}: {ENV_HEARTBEAT_INTERVAL}={seconds:g}"))
        if intervals:
            return max(intervals, key=lambda w: w.interval)
    if heartbeat_interval is not None:
        return Worker(heartbeat_interval, "the heartbeat interval given")
    if shown:
        return None  # the template shows workers, none written with callback-kit: their schedule is not guessed
    # Nothing tells the interval: a callback-kit worker beats every 30 s unless told otherwise, and a
    # HeartbeatSeconds that is safe only for a faster worker must not pass unnoticed. The finding says so.
    return Worker(DEFAULT_HEARTBEAT_INTERVAL, ASSUMED_DEFAULT)


def _ignored(comment: Any) -> set[str]:
    if not isinstance(comment, str):
        return set()
    return {code.upper() for m in _IGNORE.finditer(comment) for code in re.findall(r"CK\d{3}", m.group(1), re.I)}


def _ignored_in_metadata(template: Template, logical_id: str) -> set[str]:
    resource = template.resolver.resources.get(logical_id)
    metadata = resource.get("Metadata") if isinstance(resource, Mapping) else None
    settings = metadata.get("callback-kit") if isinstance(metadata, Mapping) else None
    codes = settings.get("ignore") if isinstance(settings, Mapping) else None
    return {str(c).upper() for c in codes} if isinstance(codes, list) else set()


def _expand(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and (p.name in _TEMPLATE_NAMES or p.name.endswith(_ASL_SUFFIXES))
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise UnreadableInputError(f"{path}: no template.yaml or *.asl.json/*.asl.yaml in it")
            yield from found
        elif path.exists():
            yield path
        else:
            raise UnreadableInputError(f"{path}: no such file")
