"""``callback-kit check``: output, formats, exit codes, options; the Python API and the pytest helper."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

from callback_kit.check import RULES, assert_clean, check_paths
from callback_kit.cli import main
from tests.check.helpers import machine, task

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^(?P<path>[^:]+):(?P<where>[^:]+): (?P<code>CK\d{3}) (?P<level>error|warning): (?P<msg>.+) \((?P<fix>.+)\)$"
)


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["check", *argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def asl_dir(tmp_path: Path) -> Path:
    """A directory with one ASL file holding an error (no timeout) and one holding only a warning."""
    (tmp_path / "error.asl.json").write_text(json.dumps(machine({"Ask": task(TimeoutSeconds=None)})))
    (tmp_path / "warning.asl.json").write_text(json.dumps(machine({"Ask": task(HeartbeatSeconds=None)})))
    return tmp_path


def test_the_projects_own_template_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the repository's template.yaml, found by default in the current directory
    monkeypatch.chdir(ROOT)
    # WHEN checked with --strict  THEN nothing at all is found: exit 0
    code, out, err = run(["--strict"])
    assert (code, out) == (0, "")
    assert "no findings" in err


def test_one_line_per_finding_and_exit_1_on_an_error(asl_dir: Path) -> None:
    code, out, err = run([str(asl_dir / "error.asl.json"), str(asl_dir / "warning.asl.json")])
    lines = out.splitlines()
    # THEN every line reads PATH:STATE: CODE level: message (fix), and the error makes it exit 1
    assert code == 1
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m["path"].rsplit("/", 1)[-1], m["where"], m["code"], m["level"]) for m in parsed if m] == [
        ("error.asl.json", "Ask", "CK001", "error"),
        ("warning.asl.json", "Ask", "CK002", "warning"),
    ]
    assert "1 error, 1 warning" in err


def test_warnings_alone_pass_unless_strict(asl_dir: Path) -> None:
    warning = str(asl_dir / "warning.asl.json")
    assert run([warning])[0] == 0
    assert run(["--strict", warning])[0] == 1


def test_ignore_drops_codes(asl_dir: Path) -> None:
    code, out, _ = run(["--ignore", "CK001", "--ignore", "ck002,CK005", str(asl_dir)])
    assert (code, out) == (0, "")


def test_json_format(asl_dir: Path) -> None:
    code, out, _ = run(["--format", "json", str(asl_dir)])
    data = json.loads(out)
    assert code == 1
    assert [(d["code"], d["level"], d["where"]) for d in data] == [
        ("CK001", "error", "Ask"),
        ("CK002", "warning", "Ask"),
    ]
    assert set(data[0]) == {"path", "where", "code", "level", "message", "fix", "resource"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.yaml"], "no such file"),
        (["--ignore", "CK999", "x"], "unknown rule code"),
        (["not-a-template.json"], "neither a CloudFormation/SAM template nor a state machine"),
        (["bad.yaml"], "neither JSON nor YAML"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-template.json").write_text('{"hello": "world"}')
    (tmp_path / "bad.yaml").write_text("a: [unclosed\n")
    code, out, err = run(argv)
    assert (code, out) == (2, "")
    assert message in err


def test_default_path_missing_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run([])
    assert code == 2
    assert "template.yaml: no such file" in err


def test_help_lists_every_rule() -> None:
    code, out, _ = run(["--help"])
    assert code == 0
    assert all(f"{rule.code}  {rule.level}" in out for rule in RULES.values())


def test_python_api_and_pytest_helper(asl_dir: Path) -> None:
    # GIVEN the API on the same files
    findings = check_paths([asl_dir])
    assert [f.code for f in findings] == ["CK001", "CK002"]
    # THEN assert_clean raises with every finding listed, passes warnings when not strict, passes clean files
    with pytest.raises(AssertionError, match=r"CK001 error.*\n.*CK002 warning"):
        assert_clean(asl_dir)
    assert_clean(asl_dir / "warning.asl.json", strict=False)
    assert_clean(asl_dir, ignore=["CK001", "CK002"])
    assert_clean(ROOT / "template.yaml")


def test_the_projects_template_is_really_linked_to_its_workers(tmp_path: Path) -> None:
    # GIVEN a copy of the project's application whose workers would beat every 40 s instead of 20 s
    text = (ROOT / "template.yaml").read_text(encoding="utf-8")
    assert "    Default: 20\n" in text
    (tmp_path / "template.yaml").write_text(text.replace("    Default: 20\n", "    Default: 40\n", 1), encoding="utf-8")
    shutil.copytree(ROOT / "statemachine", tmp_path / "statemachine")
    shutil.copytree(ROOT / "handlers", tmp_path / "handlers")
    # WHEN checked
    findings = check_paths([tmp_path / "template.yaml"])
    # THEN the three Lambda-answered tasks (HeartbeatSeconds 60 < 2x40) are reported; not the activity task, whose
    # worker the template does not define, nor the approval, whose worker hands the token off to a person
    assert [(f.code, f.where) for f in findings] == [
        ("CK004", "CheckOrder"),
        ("CK004", "NotifyCustomer"),
        ("CK004", "VerifyAgeOnline"),
    ]


def test_without_an_interval_the_library_default_is_assumed_and_said(tmp_path: Path) -> None:
    # GIVEN a state machine alone whose HeartbeatSeconds equals callback-kit's default interval of 30 s
    path = tmp_path / "beat.asl.json"
    path.write_text(json.dumps(machine({"Ask": task(HeartbeatSeconds=30)})))

    # WHEN it is checked without --heartbeat-interval
    code, out, _ = run([str(path)])

    # THEN CK004 reports it against the default, and says that the default was assumed
    assert code == 1
    assert " CK004 error: HeartbeatSeconds 30 is less than twice the worker's heartbeat interval of 30 s" in out
    assert "callback-kit's default of 30 s, assumed" in out
    assert "--heartbeat-interval" in out
    # AND an interval given still decides
    assert run([str(path), "--heartbeat-interval", "10"])[0] == 0
