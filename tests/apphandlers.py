"""Load a module of the SAM app's handlers/ (its CodeUri) from its file, as Lambda would."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_handler(module: str, namespace: str) -> ModuleType:
    """``handlers/<module>.py``, loaded once per ``namespace`` (each suite patches its own copy)."""
    name = f"_{namespace}_handlers_{module}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "handlers" / f"{module}.py")
        assert spec is not None
        assert spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]
