"""The distributions ``python -m build`` makes: built without a warning, accepted by ``twine check``, and holding
what users install (the package, py.typed, the license) and nothing of the checkout (the demo, the tests).

Built once per module, without build isolation (the dev extras hold the setuptools the build system asks for),
so the test takes a few seconds and needs no network.
"""

from __future__ import annotations

import email
import email.message
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import callback_kit

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "https://github.com/callback-kit/callback-kit"


@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path
    log: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    out = tmp_path_factory.mktemp("dist")
    # PYTHONDONTWRITEBYTECODE makes setuptools print "byte-compiling is disabled" warnings of its own.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    return Built(next(out.glob("*.whl")), next(out.glob("*.tar.gz")), log)


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(zf.read(name))


def test_the_build_prints_no_warning(built: Built) -> None:
    # GIVEN / WHEN the sdist and the wheel are built / THEN nothing warns (a deprecated license table did)
    warnings = [line for line in built.log.splitlines() if "warn" in line.lower()]
    assert warnings == []


def test_twine_check_passes(built: Built) -> None:
    # GIVEN the built distributions / WHEN twine checks them as PyPI would / THEN they pass, strictly
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "twine", "check", "--strict", str(built.wheel), str(built.sdist)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_ships_the_package_typed_and_licensed_without_the_checkout(built: Built) -> None:
    # GIVEN the wheel's file list
    with zipfile.ZipFile(built.wheel) as zf:
        names = zf.namelist()
    top_level = {name.split("/")[0] for name in names}
    # THEN only the package and its metadata are in it: no demo, tests, handlers or bench
    assert top_level == {"callback_kit", f"callback_kit-{callback_kit.__version__}.dist-info"}
    assert not [n for n in names if "/demo/" in n or n.startswith("demo/")]
    # AND it is typed, licensed, runnable with python -m, and ships the testing kit and the simulator
    assert "callback_kit/py.typed" in names
    assert f"callback_kit-{callback_kit.__version__}.dist-info/licenses/LICENSE" in names
    assert "callback_kit/__main__.py" in names
    assert "callback_kit/testing/__init__.py" in names
    assert "callback_kit/simulator/__init__.py" in names


def test_the_sdist_holds_the_license_and_no_demo(built: Built) -> None:
    # GIVEN / WHEN the sdist's file list / THEN the license is in it and the demo is not
    with tarfile.open(built.sdist) as tf:
        names = [name.split("/", 1)[1] for name in tf.getnames() if "/" in name]
    assert "LICENSE" in names
    assert not [n for n in names if n.startswith("demo/")]


def test_the_metadata_says_what_a_package_index_shows(built: Built) -> None:
    # GIVEN the wheel's METADATA
    meta = metadata(built.wheel)
    # THEN the version is the package's, the license a PEP 639 expression with its file, no license classifier
    assert meta["Version"] == callback_kit.__version__
    assert meta["License-Expression"] == "MIT-0"
    assert meta.get_all("License-File") == ["LICENSE"]
    classifiers = meta.get_all("Classifier") or []
    assert not [c for c in classifiers if c.startswith("License ::")]
    # AND the classifiers a user filters by are there
    for expected in ("Development Status :: 4 - Beta", "Typing :: Typed", "Topic :: System :: Distributed Computing"):
        assert expected in classifiers
    assert [c for c in classifiers if c.startswith("Programming Language :: Python :: 3.1")] == [
        f"Programming Language :: Python :: 3.{minor}" for minor in (10, 11, 12, 13)
    ]
    assert meta["Requires-Python"] == ">=3.10"
    # AND the project's URLs point at the repository
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Repository", "Issues", "Changelog"}
    assert all(url.startswith(REPOSITORY) for url in urls.values())
    # AND the README is the long description, as Markdown
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "# callback-kit" in (meta.get_payload() or "")


def test_the_console_script_and_the_pytest_plugin_are_declared(built: Built) -> None:
    # GIVEN / WHEN the wheel's entry points / THEN the command and the plugin are there
    with zipfile.ZipFile(built.wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        text = zf.read(name).decode()
    assert "callback-kit = callback_kit.cli:main" in text
    assert "callback_kit = callback_kit.pytest_plugin" in text


def test_the_test_extra_holds_only_what_local_sfn_needs(built: Built) -> None:
    # GIVEN the wheel's requirements for the `test` extra, the one the README gives users of local_sfn
    from packaging.requirements import Requirement

    requires = [Requirement(r) for r in metadata(built.wheel).get_all("Requires-Dist") or []]
    test = sorted(r.name for r in requires if r.marker is not None and 'extra == "test"' in str(r.marker))
    # THEN it is pytest, moto and AWS's durable runner with its SDK: the project's own tools (hypothesis, cfn-lint
    # and its sympy, linters, type checkers) are in `dev`, so that a user's install stays small
    assert test == [
        "aws-durable-execution-sdk-python",
        "aws-durable-execution-sdk-python-testing",
        "moto",
        "pytest",
    ]
