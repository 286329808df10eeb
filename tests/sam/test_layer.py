"""The callback_kit Lambda layer leaves the AWS SDK to the runtime and ships what the runtime lacks.

The Lambda Python runtimes ship boto3 (with botocore, s3transfer, urllib3, jmespath, dateutil, six): three
quarters of the layer's size when it was included. The layer's requirements.txt lists the rest of pyproject.toml's
dependencies; these tests keep the two in step, and check the ``sam build`` output when there is one.
"""

from __future__ import annotations

import re
from importlib.metadata import requires
from pathlib import Path
from typing import Any

import pytest

from demo.template import load_template

ROOT = Path(__file__).resolve().parents[2]
LAYER_DIR = ROOT / "layers" / "callback_kit"
BUILT_LAYER = ROOT / ".aws-sam" / "build" / "CallbackKitLayer" / "python"
#: The AWS SDK and its dependencies, as the Lambda Python runtime provides them (distribution names).
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "urllib3", "jmespath", "python-dateutil", "six"}


def requirement_names(lines: list[str]) -> set[str]:
    names = set()
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.match(r"[A-Za-z0-9._-]+", line)
            assert match, line
            names.add(match.group(0).lower().replace("_", "-"))
    return names


def test_the_layer_is_built_by_its_makefile() -> None:
    # GIVEN the template's layer
    layer: dict[str, Any] = load_template(ROOT / "template.yaml")["Resources"]["CallbackKitLayer"]
    # THEN it is built by layers/callback_kit/Makefile, whose target sam build calls by the layer's name
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"].rstrip("/") == "layers/callback_kit"
    assert "build-CallbackKitLayer:" in (LAYER_DIR / "Makefile").read_text(encoding="utf-8")


def test_the_durable_sdk_layer_is_built_by_its_makefile_and_pins_the_sdks_major_version() -> None:
    # GIVEN the layer only the durable function takes
    layer: dict[str, Any] = load_template(ROOT / "template.yaml")["Resources"]["DurableSdkLayer"]
    directory = ROOT / layer["Properties"]["ContentUri"]
    # THEN its Makefile builds it by the layer's name, and it holds the SDK at the major version the code is written for
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert "build-DurableSdkLayer:" in (directory / "Makefile").read_text(encoding="utf-8")
    lines = [
        line for line in (directory / "requirements.txt").read_text(encoding="utf-8").splitlines() if line[:1].isalpha()
    ]
    assert lines == ["aws-durable-execution-sdk-python>=3.0,<4"]


def test_the_layer_requirements_are_the_dependencies_minus_the_aws_sdk() -> None:
    # GIVEN the package's dependencies (pyproject.toml's, as installed) and the layer's requirements
    dependencies = requirement_names([r for r in requires("callback-kit") or [] if "extra ==" not in r])
    layer = requirement_names((LAYER_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines())
    # THEN the layer lists every dependency the runtime lacks, and no SDK package
    assert layer == dependencies - RUNTIME_PROVIDED
    assert "boto3" in dependencies  # the package itself still depends on boto3 outside Lambda


def test_the_built_layer_has_callback_kit_and_not_the_sdk() -> None:
    # GIVEN the sam build output (.ci/sam-checks builds it)
    if not BUILT_LAYER.is_dir():
        pytest.skip("no .aws-sam/build: run .ci/sam-checks (it runs sam build) to check the built layer")
    names = {path.name for path in BUILT_LAYER.iterdir()}
    # THEN callback_kit and its other dependencies are in it, installed as distributions
    assert {"callback_kit", "aws_lambda_powertools", "pydantic", "pydantic_core"} <= names
    assert any(name.startswith("callback_kit-") and name.endswith(".dist-info") for name in names)
    # AND neither the SDK, nor the demo, nor console scripts
    assert not names & {"boto3", "botocore", "s3transfer", "urllib3", "dateutil", "bin"}
    assert not (BUILT_LAYER / "callback_kit" / "demo").exists()
    assert not (BUILT_LAYER / "demo").exists()
