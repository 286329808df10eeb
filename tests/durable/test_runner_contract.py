"""The local durable runner's behaviours that callback_kit/simulator/durable.py relies on, and how it presents them.

If a release of aws-durable-execution-sdk-python-testing changes one of these, this file says which, rather than
the end-to-end tests failing for a reason that is hard to see.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from callback_kit.task.answers import MAX_DURABLE_RESULT_BYTES
from tests.durable.runner import CallbackQueue, RunnerLambdaClient, durable_order, running

pytestmark = pytest.mark.slow


def _waiting(runner: Any, queue: CallbackQueue) -> tuple[str, str]:
    """Start an execution and return its ARN and the callback id it waits on."""
    ids: list[str] = []

    def keep(message: Any) -> str:
        ids.append(message["callbackId"])
        return "m"

    queue.send = keep  # type: ignore[method-assign]
    arn = runner.run_async(input="{}", execution_timeout=60)
    deadline = time.monotonic() + 10
    while not ids and time.monotonic() < deadline:
        time.sleep(0.02)
    return arn, ids[0]


def test_the_runners_own_answers_to_closed_and_unknown_callbacks() -> None:
    from aws_durable_execution_sdk_python_testing.exceptions import ResourceNotFoundException

    queue = CallbackQueue()
    with running(durable_order(queue)) as runner:
        arn, callback_id = _waiting(runner, queue)
        runner.send_callback_success(callback_id, b"{}")
        runner.wait_for_result(arn, timeout=30)
        # Lambda: CallbackTimeoutException for each of these; the runner: ResourceNotFoundException
        with pytest.raises(ResourceNotFoundException, match="not in STARTED state"):
            runner.send_callback_success(callback_id, b"{}")
        with pytest.raises(ResourceNotFoundException, match="is not active"):
            runner.send_callback_heartbeat(callback_id)
        # An id it never issued: ResourceNotFoundException, worded otherwise
        with pytest.raises(ResourceNotFoundException) as unknown:
            runner.send_callback_success("bm90LWlzc3VlZA==", b"{}")
        assert "not in STARTED state" not in str(unknown.value)
        assert "is not active" not in str(unknown.value)


def test_the_adapter_answers_with_lambdas_codes() -> None:
    queue = CallbackQueue()
    with running(durable_order(queue)) as runner:
        client = RunnerLambdaClient(runner)
        arn, callback_id = _waiting(runner, queue)
        with pytest.raises(ClientError) as too_large:
            client.send_durable_execution_callback_success(
                CallbackId=callback_id, Result=b"x" * (MAX_DURABLE_RESULT_BYTES + 1)
            )
        assert too_large.value.response["Error"]["Code"] == "InvalidParameterValueException"
        client.send_durable_execution_callback_heartbeat(CallbackId=callback_id)
        client.send_durable_execution_callback_success(CallbackId=callback_id, Result=b'{"ok": true}')
        runner.wait_for_result(arn, timeout=30)
        calls: list[Callable[[], Any]] = [
            functools.partial(client.send_durable_execution_callback_success, CallbackId=callback_id, Result=b"{}"),
            functools.partial(client.send_durable_execution_callback_failure, CallbackId=callback_id, Error={}),
            functools.partial(client.send_durable_execution_callback_heartbeat, CallbackId=callback_id),
        ]
        for call in calls:
            with pytest.raises(ClientError) as closed:
                call()
            assert closed.value.response["Error"]["Code"] == "CallbackTimeoutException"
            assert callback_id not in str(closed.value)  # the runner's message quotes the id; Lambda's does not
        with pytest.raises(ClientError) as unknown:
            client.send_durable_execution_callback_heartbeat(CallbackId="bm90LWlzc3VlZA==")
        assert unknown.value.response["Error"]["Code"] == "ResourceNotFoundException"
