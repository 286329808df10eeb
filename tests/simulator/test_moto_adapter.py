"""Contract tests for moto's private API: each names the moto behaviour the simulator relies on.

When a moto release changes one, its test here fails by that name (and ``LocalStepFunctions`` refuses to start
with one line saying so), instead of every end-to-end test failing somewhere deep in moto's interpreter. CI's
canary runs these against the newest moto; docs/simulator.md says what to do when one goes red.
"""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from callback_kit.simulator import LocalStepFunctions, moto_adapter
from callback_kit.simulator.moto_adapter import CONTRACTS, Contract, UnsupportedMotoError


@pytest.fixture
def unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let require() check again (it remembers a successful check for the process)."""
    monkeypatch.setattr(moto_adapter, "_checked", False)


@pytest.mark.parametrize("contract", [pytest.param(c, id=c.name) for c in CONTRACTS])
def test_moto_still_offers(contract: Contract) -> None:
    # GIVEN one thing the simulator takes from moto's private API
    # WHEN it is looked up in the installed moto
    try:
        contract.resolve()
    except moto_adapter.MotoContractError as exc:
        # THEN (on failure) the report names the moto behaviour that moved
        pytest.fail(f"moto changed: {exc}", pytrace=False)


def test_every_patch_replaces_something_moto_has() -> None:
    # GIVEN the patches the simulator applies to moto's classes
    patches = moto_adapter.interpreter_patches()

    # THEN each one replaces an attribute that moto defines, so that none silently adds a new one
    assert patches
    for patch in patches:
        assert hasattr(patch.owner, patch.name), f"moto's {patch.owner.__name__} has no {patch.name} any more"


def test_service_errors_reach_the_client_with_their_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a moto backend method that raises the adapter's service error (as the simulator's patches do)
    from moto import mock_aws

    backend_class = type(moto_adapter.stepfunctions_backend("123456789012", "us-east-1"))

    def closed(*args: object, **kwargs: object) -> None:
        raise moto_adapter.service_error("TaskTimedOut", "Task Timed Out: 'Provided task does not exist anymore'")

    monkeypatch.setattr(backend_class, "send_task_heartbeat", closed)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    # WHEN a client calls it
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        client = boto3.client("stepfunctions", region_name="us-east-1")
        with pytest.raises(ClientError) as raised:
            client.send_task_heartbeat(taskToken="t" * 36)

    # THEN the client sees AWS's code and message (moto 5.2.6 changed the class this is built from)
    assert raised.value.response["Error"]["Code"] == "TaskTimedOut"
    assert "does not exist anymore" in raised.value.response["Error"]["Message"]
    assert moto_adapter.error_code(moto_adapter.service_error("InvalidOutput", "x")) == "InvalidOutput"


def test_a_moto_that_broke_a_contract_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch, unchecked: None) -> None:
    # GIVEN an installed moto that no longer has something the simulator relies on
    gone = Contract("callback-wait", "moto.stepfunctions.parser:NoSuchThing", "a task waits in NoSuchThing")
    monkeypatch.setattr(moto_adapter, "CONTRACTS", (*CONTRACTS, gone))

    # WHEN a simulator starts
    with pytest.raises(UnsupportedMotoError) as raised, LocalStepFunctions():
        pass

    # THEN one line names the installed version, what changed, the supported range and the fix
    message = str(raised.value)
    assert "\n" not in message
    assert f"moto {moto_adapter.installed_version()} is not supported" in message
    assert "changed: callback-wait" in message
    assert f"moto{moto_adapter.SUPPORTED_MOTO}" in message
    assert moto_adapter.FIX_COMMAND in message


def test_a_contract_of_a_moto_extra_the_user_lacks_is_left_to_its_feature(
    monkeypatch: pytest.MonkeyPatch, unchecked: None
) -> None:
    # GIVEN a contract on a moto extra that is not installed (local_sfn needs no moto server, and no flask)
    server_only = Contract("threaded-server", "moto:NoSuchServer", "the server", needs="no_such_module_for_test")
    monkeypatch.setattr(moto_adapter, "CONTRACTS", (*CONTRACTS, server_only))

    # WHEN the simulator checks the installed moto
    # THEN it does not refuse it for a feature the user does not use
    moto_adapter.require()
    assert moto_adapter.check_contracts() == []


def test_a_moto_outside_the_tested_range_warns_once_but_runs(monkeypatch: pytest.MonkeyPatch, unchecked: None) -> None:
    # GIVEN a moto release newer than the tested range whose private API still holds every contract
    monkeypatch.setattr(moto_adapter, "installed_version", lambda: "5.9.0")

    # WHEN the simulator checks it twice
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        moto_adapter.require()
        moto_adapter.require()

    # THEN it warns once, naming the version and the fix, and does not refuse it
    assert len(caught) == 1
    assert "moto 5.9.0 is outside the range" in str(caught[0].message)
    assert moto_adapter.FIX_COMMAND in str(caught[0].message)


def test_the_local_sfn_fixture_reports_an_unsupported_moto_in_one_line(tmp_path: Path) -> None:
    # GIVEN a user's test suite using local_sfn, with a moto that breaks a contract
    (tmp_path / "conftest.py").write_text(
        "from callback_kit.simulator import moto_adapter\n"
        "gone = moto_adapter.Contract('callback-wait', 'moto:NoSuchThing', 'a task waits in NoSuchThing')\n"
        "moto_adapter.CONTRACTS = (*moto_adapter.CONTRACTS, gone)\n"
    )
    (tmp_path / "test_user.py").write_text("def test_flow(local_sfn):\n    pass\n")

    # WHEN pytest runs it
    run = subprocess.run(  # noqa: S603 - our own interpreter running pytest on files written here
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )

    # THEN the test errors with the adapter's one line, not a traceback from deep inside moto
    assert run.returncode != 0
    assert "is not supported by callback-kit's simulator" in run.stdout
    assert "Traceback" not in run.stdout


def test_the_test_extra_declares_the_supported_range() -> None:
    # GIVEN the installed project's metadata (what pip install "callback-kit[test]" reads)
    requires = metadata.requires("callback-kit") or []

    # WHEN the moto requirement of the test extra is read
    (moto,) = [req for req in requires if req.startswith("moto") and 'extra == "test"' in req]

    # THEN it is the range the simulator checks for (the range CI runs)
    specifier = re.sub(r"^moto(\[[^\]]*\])?\s*", "", moto.split(";")[0]).strip()
    assert sorted(specifier.split(",")) == sorted(moto_adapter.SUPPORTED_MOTO.split(","))


def test_the_installed_moto_is_in_the_supported_range() -> None:
    # GIVEN the moto this run installed (from the lock, or the floors; the canary skips this test)
    version = moto_adapter.installed_version()

    # THEN it is one the supported range includes
    assert version is not None
    assert moto_adapter.supported(version), f"moto {version} is outside {moto_adapter.SUPPORTED_MOTO}"
