"""Every state machine example in the README and docs/ passes ``callback-kit check``, except those shown as wrong.

A reader copies these examples into real state machines, so an example without ``TimeoutSeconds`` teaches the very
hang the checker exists to catch. The examples are ASL JSON blocks (whole machines, or one named state such as
``"Ask approver": {...}``) and the ``definition = {...}`` dicts of the Python examples. In docs/check.md each rule
shows a "Before" that breaks it and an "After" that fixes it: a "Before" must be reported, everything else must pass.
An abridged example (``"...": "..."`` for the fields left out) is judged on its section's rule alone.
"""

from __future__ import annotations

import ast
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from callback_kit.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*```(\w*)\s*$")


@dataclass(frozen=True)
class Example:
    where: str
    definition: dict[str, Any]
    before: str | None  # shown as the wrong way for this rule (CK001, ...): the checker must report that code
    section: str  # the heading it is under: for a rule's examples, its code
    abridged: bool  # a "...": "..." stands for fields left out: only the section's rule can be judged
    heartbeat_interval: float | None  # the example's own worker's, when its code sets one


def blocks(path: Path) -> list[tuple[int, str, str, str, str]]:
    """``(line, language, text, the last prose line before it, the heading it is under)`` of every fenced block."""
    found: list[tuple[int, str, str, str, str]] = []
    prose, heading, lang, start = "", "", None, 0
    body: list[str] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = FENCE.match(line)
        if lang is None and fence:
            lang, start, body = fence.group(1), number, []
        elif lang is not None and fence and not fence.group(1):
            found.append((start, lang, "\n".join(body), prose, heading))
            lang = None
        elif lang is not None:
            body.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.strip():
            prose = line.strip()
    return found


def as_machine(value: Any) -> dict[str, Any] | None:
    """A whole state machine, or one named state made into a machine of its own; None for other fragments."""
    if not isinstance(value, dict):
        return None
    if "States" in value:
        return value
    if len(value) == 1:
        [(name, state)] = value.items()
        if isinstance(state, dict) and "Type" in state:
            state = {k: v for k, v in state.items() if k != "Next"}
            return {"StartAt": name, "States": {name: {**state, "End": True}}}
    return None


def literal(node: ast.AST) -> Any:
    """A dict literal's value, with any expression in it (``queue.url``) standing as a placeholder string."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Dict):
        return {literal(k): literal(v) for k, v in zip(node.keys, node.values, strict=True) if k is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [literal(e) for e in node.elts]
    return "<expression>"


def python_examples(text: str) -> tuple[list[dict[str, Any]], float | None]:
    """The state machine dicts of a Python example, and the heartbeat interval its handler is decorated with."""
    tree = ast.parse(text)
    machines = [
        literal(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "StartAt" for k in node.keys)
    ]
    intervals = [
        float(kw.value.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == "heartbeat_interval"
        and isinstance(kw.value, ast.Constant)
        and isinstance(kw.value.value, (int, float))
    ]
    return machines, (intervals[0] if intervals else None)


def examples() -> list[Example]:
    found: list[Example] = []
    for path in DOCUMENTS:
        for line, lang, text, prose, heading in blocks(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            shown_wrong = prose.rfind("Before") > prose.rfind("After")
            before = heading if shown_wrong else None
            if lang == "json":
                try:
                    value = json.loads(text)
                except ValueError:
                    try:
                        value = json.loads("{" + text + "}")  # a named state: "Ask approver": {...}
                    except ValueError:
                        continue
                machine = as_machine(value)
                if machine is not None:
                    found.append(Example(where, machine, before, heading, '"..."' in text, None))
            elif lang == "python":
                machines, interval = python_examples(text)
                found.extend(Example(where, m, before, heading, False, interval) for m in machines)
    return found


EXAMPLES = examples()


def test_the_examples_are_found() -> None:
    # GIVEN the documents / WHEN searched / THEN the known examples are among those checked
    places = {e.where.split(":")[0] for e in EXAMPLES}
    assert {"README.md", "docs/check.md", "docs/activity.md"} <= places
    assert any(e.where.startswith("README.md") and e.heartbeat_interval is not None for e in EXAMPLES), (
        "the README's local_sfn example"
    )
    assert {e.before for e in EXAMPLES if e.before} >= {"CK001", "CK004", "CK010"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.where for e in EXAMPLES])
def test_every_state_machine_example_passes_the_checker(example: Example, tmp_path: Path) -> None:
    # GIVEN an example state machine, saved as a reader would save it
    path = tmp_path / "example.asl.json"
    path.write_text(json.dumps(example.definition), encoding="utf-8")
    argv = ["check", str(path)]
    if example.heartbeat_interval is not None:
        argv += ["--heartbeat-interval", f"{example.heartbeat_interval:g}"]

    # WHEN `callback-kit check` runs on it
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--format", "json"], stdout=out, stderr=err)
    codes = [f["code"] for f in json.loads(out.getvalue())]

    # THEN it passes (no error-level finding), unless the document shows it as the wrong way: then the rule it
    # illustrates reports it. Of an abridged example only that rule can be judged: the fields left out are not there.
    if example.before is not None:
        assert example.before in codes, f"{example.where} is shown breaking {example.before} but is not reported"
    elif example.abridged:
        assert example.section not in codes, f"{example.where}:\n{out.getvalue()}"
    else:
        assert code == 0, f"{example.where}:\n{out.getvalue()}"
