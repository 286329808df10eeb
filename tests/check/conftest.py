"""Fixtures that write small state machines and templates to a temporary directory and check them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from callback_kit.check import Finding, check_paths

CheckAsl = Callable[..., list[Finding]]
CheckTemplate = Callable[..., list[Finding]]


@pytest.fixture
def check_asl(tmp_path: Path) -> CheckAsl:
    """Write a definition to ``x.asl.json`` and return the checker's findings."""

    def run(definition: Mapping[str, Any], **options: Any) -> list[Finding]:
        path = tmp_path / "x.asl.json"
        path.write_text(json.dumps(definition), encoding="utf-8")
        return check_paths([path], **options)

    return run


@pytest.fixture
def check_template(tmp_path: Path) -> CheckTemplate:
    """Write a template (YAML text) and optional side files (name -> text), and return the findings."""

    def run(text: str, files: Mapping[str, str] | None = None, **options: Any) -> list[Finding]:
        for name, content in (files or {}).items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(content, encoding="utf-8")
        path = tmp_path / "template.yaml"
        path.write_text(text, encoding="utf-8")
        return check_paths([path], **options)

    return run
