"""The cfn-lint plugin, run the way users run it: ``cfn-lint --append-rules callback_kit.check.cfn_lint_rules``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from callback_kit.check.cfn_lint_rules import rule_id
from callback_kit.check.findings import RULES

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(__file__).parent / "samples"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
#: cfn-lint takes a few seconds to start and load its schemas.
pytestmark = pytest.mark.slow


def cfn_lint(*args: str) -> tuple[int, list[dict[str, object]]]:
    result = subprocess.run(  # noqa: S603 - our own venv's cfn-lint, fixed arguments
        [str(CFN_LINT), "--format", "json", *args], capture_output=True, text=True, timeout=120, check=False
    )
    return result.returncode, json.loads(result.stdout or "[]")


@pytest.mark.parametrize(
    "plugin",
    ["callback_kit.check.cfn_lint_rules", str(ROOT / "callback_kit/check/cfn_lint_rules")],
    ids=["module", "dir"],
)
def test_cfn_lint_reports_the_rules_on_the_resource(plugin: str) -> None:
    # GIVEN a public sample whose state machine (loaded from DefinitionUri) has callback tasks without timeouts
    template = SAMPLES / "parallel-human-approval/template.yaml"
    # WHEN cfn-lint runs with the plugin, named as a module or as a directory
    code, matches = cfn_lint("--append-rules", plugin, "--", str(template))
    ours = [m for m in matches if str(m["Rule"]["Id"]).startswith(("E91", "W91"))]  # type: ignore[index]
    # THEN it reports E9101 and W9102 three times each, on the state machine resource's line, and fails
    assert code != 0
    assert sorted(str(m["Rule"]["Id"]) for m in ours) == ["E9101"] * 3 + ["W9102"] * 3  # type: ignore[index]
    assert {m["Location"]["Start"]["LineNumber"] for m in ours} == {25}  # type: ignore[index]
    assert all("SNS Publish to Approver" in str(m["Message"]) for m in ours)


def test_cfn_lint_passes_the_projects_template_and_honours_ignore_checks() -> None:
    # GIVEN the project's template (clean) and a sample with only warnings once E9101 is ignored
    code, matches = cfn_lint("--append-rules", "callback_kit.check.cfn_lint_rules", "--", str(ROOT / "template.yaml"))
    assert (code, matches) == (0, [])
    code, matches = cfn_lint(
        "--append-rules",
        "callback_kit.check.cfn_lint_rules",
        "--ignore-checks",
        "E9101",
        "W9102",
        "--",
        str(SAMPLES / "parallel-human-approval/template.yaml"),
    )
    assert (code, matches) == (0, [])


def test_every_code_has_a_rule_id() -> None:
    from callback_kit.check import cfn_lint_rules

    ids = {cls.id for name, cls in vars(cfn_lint_rules).items() if name.startswith("CallbackKitCK")}
    expected = {rule_id(r.code, r.level) for r in RULES.values()} | {rule_id("CK006", "warning")}
    assert ids == expected


def test_a_template_without_a_file_is_checked_as_parsed() -> None:
    # GIVEN what cfn-lint hands a rule for a template read from stdin: no file, only the parsed template
    from callback_kit.check.cfn_lint_rules import CallbackKitCK001

    state = {
        "Type": "Task",
        "End": True,
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"MessageBody": {"TaskToken.$": "$$.Task.Token"}},
    }
    definition = json.dumps({"StartAt": "A", "States": {"A": state}})
    template = {
        "Resources": {"M": {"Type": "AWS::StepFunctions::StateMachine", "Properties": {"DefinitionString": definition}}}
    }

    class Parsed:
        filename = None

        def __init__(self) -> None:
            self.template = template

    # WHEN the CK001 rule matches  THEN it reports the task on the state machine resource
    matches = CallbackKitCK001().match(Parsed())
    assert [(m.path, m.message.split(":", 1)[0]) for m in matches] == [(["Resources", "M"], "CK001 M/A")]
