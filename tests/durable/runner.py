"""What the durable tests share: the skip on Python 3.10, and a durable function waiting on a worker's queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip(
    "aws_durable_execution_sdk_python_testing",
    reason="AWS's local durable runner (aws-durable-execution-sdk-python-testing) needs Python >= 3.11",
)

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, WaitForCallbackConfig
from aws_durable_execution_sdk_python.exceptions import CallbackError
from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

from callback_kit.simulator.durable import CallbackQueue, RunnerLambdaClient

__all__ = [
    "CallbackQueue",
    "DurableFunctionTestRunner",
    "RunnerLambdaClient",
    "callback_failure",
    "durable_order",
    "running",
]


def durable_order(queue: CallbackQueue, *, timeout: int = 30, heartbeat_timeout: int = 0) -> Any:
    """A durable function that sends its callback id to ``queue`` with the order, and returns what came back.

    A failure is returned as ``{"failed": the SDK's error class, "message": ErrorMessage}``: the SDK (3.0) raises
    ``CallbackExternalError`` with the message only; the ``ErrorType`` the worker sent is in the execution's
    history (:func:`callback_failure`).
    """

    def order(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
        config = WaitForCallbackConfig(
            timeout=Duration.from_seconds(timeout), heartbeat_timeout=Duration.from_seconds(heartbeat_timeout)
        )

        def submit(callback_id: str, _: Any) -> None:
            queue.send({"callbackId": callback_id, **event})

        try:
            result = context.wait_for_callback(submit, name="check", config=config)
        except CallbackError as exc:
            return {"failed": type(exc).__name__, "message": exc.message}
        # Without a serdes the SDK hands the raw Result string over, as Lambda does.
        return {"result": json.loads(result)}

    # Applied by hand rather than as a decorator: where the SDK is absent to mypy (Python 3.10), it is untyped.
    return durable_execution(order)


def callback_failure(runner: DurableFunctionTestRunner, arn: str) -> tuple[Any, ...] | None:
    """``(ErrorType, ErrorMessage, StackTrace)`` of the execution's failed callback, from its history."""
    for event in runner.get_execution_history(arn, include_execution_data=True).events:
        details: Any = event.callback_failed_details
        if event.event_type == "CallbackFailed" and details is not None:
            error = details.error.payload
            return error.type, error.message, error.stack_trace
    return None


@contextmanager
def running(handler: Any, **options: Any) -> Iterator[DurableFunctionTestRunner]:
    """A runner on real time (callback timeouts must really pass while the worker runs)."""
    with DurableFunctionTestRunner(handler=handler, skip_time=False, **options) as runner:
        yield runner
