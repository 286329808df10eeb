"""callback-kit's rules as cfn-lint rules: ``cfn-lint --append-rules callback_kit.check.cfn_lint_rules template.yaml``.

Each code becomes a cfn-lint rule id: ``CK0NN`` is ``E91NN`` at error level and ``W91NN`` at warning level (CK006,
which has both levels, is both E9106 and W9106), so ``--ignore-checks W9102`` or ``--include-checks`` work as for
any rule. The rules read the template file itself (cfn-lint hands rules a template that SAM's transform has already
rewritten, without the ``DefinitionUri`` files and the ``Events`` a callback workflow is made of), and report on
the resource each finding belongs to.

This module is also loaded by file when ``--append-rules`` names its directory (cfn-lint imports every
``[A-Za-z1-9]*.py`` there), so it imports callback_kit absolutely: callback-kit must be installed where cfn-lint is.
"""

from __future__ import annotations

import os
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch  # type: ignore[import-untyped]

from callback_kit.check.engine import check_paths, check_template
from callback_kit.check.findings import RULES, Finding, Level
from callback_kit.check.template import read_template

#: The path findings carry when cfn-lint read the template from stdin (there is no file to name).
PARSED = "-"
SOURCE_URL = "https://github.com/callback-kit/callback-kit/blob/main/docs/check.md"
#: One template's findings, shared by all the rules (cfn-lint asks each rule in turn about the same template).
_last: tuple[tuple[Any, ...], list[Finding]] | None = None


def rule_id(code: str, level: Level) -> str:
    """The cfn-lint id of a callback-kit code at a level.

    Example:
        >>> rule_id("CK001", "error"), rule_id("CK006", "warning")
        ('E9101', 'W9106')
    """
    return f"{'E' if level == 'error' else 'W'}91{code[-2:]}"


def findings_for(cfn: Any) -> list[Finding]:
    """The checker's findings for the template cfn-lint is linting (read from its file when it has one)."""
    global _last
    filename = getattr(cfn, "filename", None)
    if filename and os.path.isfile(filename):
        key: tuple[Any, ...] = ("file", os.path.abspath(filename), os.path.getmtime(filename))
    else:
        key = ("template", id(cfn.template))
    if _last is None or _last[0] != key:
        if key[0] == "file":
            found = check_paths([str(filename)])
        else:  # stdin: only the parsed template is there
            found = list(dict.fromkeys(check_template(read_template(cfn.template, PARSED))))
        _last = (key, found)
    return _last[1]


class _CallbackKitRule:
    """What every callback-kit rule does; a mixin, so that cfn-lint does not load it as a rule of its own."""

    code: str = ""
    level: Level = "error"

    def match(self, cfn: Any) -> list[Any]:
        resources = cfn.template.get("Resources") or {}
        matches = []
        for finding in findings_for(cfn):
            if finding.code != self.code or finding.level != self.level:
                continue
            resource = finding.resource or finding.where.split("/", 1)[0]
            path = ["Resources", resource] if resource in resources else ["Resources"]
            own_file = finding.path in (getattr(cfn, "filename", None), PARSED)
            where = finding.where if own_file else f"{finding.path}:{finding.where}"
            matches.append(RuleMatch(path, f"{finding.code} {where}: {finding.message} ({finding.fix})"))
        return matches


def _rule(code: str, level: Level) -> type:
    rule = RULES[code]
    return type(
        f"CallbackKit{code}{level.title()}",
        (_CallbackKitRule, CloudFormationLintRule),
        {
            "id": rule_id(code, level),
            "shortdesc": f"callback-kit {code}",
            "description": f"{code}: {rule.title}",
            "source_url": f"{SOURCE_URL}#{code.lower()}",
            "tags": ["callback-kit", "stepfunctions", "callbacks"],
            "code": code,
            "level": level,
            "__doc__": f"callback-kit {code} ({level}): {rule.title}.",
        },
    )


CallbackKitCK000 = _rule("CK000", "error")
CallbackKitCK001 = _rule("CK001", "error")
CallbackKitCK002 = _rule("CK002", "warning")
CallbackKitCK003 = _rule("CK003", "error")
CallbackKitCK004 = _rule("CK004", "error")
CallbackKitCK005 = _rule("CK005", "warning")
CallbackKitCK006Error = _rule("CK006", "error")
CallbackKitCK006Warning = _rule("CK006", "warning")
CallbackKitCK007 = _rule("CK007", "warning")
CallbackKitCK008 = _rule("CK008", "warning")
CallbackKitCK009 = _rule("CK009", "warning")
CallbackKitCK010 = _rule("CK010", "warning")
CallbackKitCK011 = _rule("CK011", "error")
CallbackKitCK012 = _rule("CK012", "warning")
CallbackKitCK013 = _rule("CK013", "error")
CallbackKitCK014 = _rule("CK014", "error")
