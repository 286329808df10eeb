"""The cfn-lint plugin: ``cfn-lint --append-rules callback_kit.check.cfn_lint_rules template.yaml``.

Importing it needs cfn-lint (``pip install cfn-lint``); nothing else in callback_kit imports it.
"""

from __future__ import annotations

from callback_kit.check.cfn_lint_rules.rules import (
    CallbackKitCK000,
    CallbackKitCK001,
    CallbackKitCK002,
    CallbackKitCK003,
    CallbackKitCK004,
    CallbackKitCK005,
    CallbackKitCK006Error,
    CallbackKitCK006Warning,
    CallbackKitCK007,
    CallbackKitCK008,
    CallbackKitCK009,
    CallbackKitCK010,
    CallbackKitCK011,
    CallbackKitCK012,
    CallbackKitCK013,
    CallbackKitCK014,
    rule_id,
)

__all__ = [
    "CallbackKitCK000",
    "CallbackKitCK001",
    "CallbackKitCK002",
    "CallbackKitCK003",
    "CallbackKitCK004",
    "CallbackKitCK005",
    "CallbackKitCK006Error",
    "CallbackKitCK006Warning",
    "CallbackKitCK007",
    "CallbackKitCK008",
    "CallbackKitCK009",
    "CallbackKitCK010",
    "CallbackKitCK011",
    "CallbackKitCK012",
    "CallbackKitCK013",
    "CallbackKitCK014",
    "rule_id",
]
