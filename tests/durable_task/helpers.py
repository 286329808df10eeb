"""Running a durable task handler on AWS's local durable runner, with an in-memory Step Functions to answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aws_durable_execution_sdk_python import DurableContext
from aws_durable_execution_sdk_python_testing import DurableFunctionTestResult, DurableFunctionTestRunner
from aws_durable_execution_sdk_python_testing.runner import StepOperation

from callback_kit.durable_task import ANSWER_STEP_NAME
from callback_kit.task.completion import RetryPolicy

#: Real seconds a test waits for an execution (the runner skips durable waits: it never takes this long).
TIMEOUT = 30
#: The executions' own timeout, on the runner's clock, which jumps over each wait: longer than any wait here.
EXECUTION_TIMEOUT = 30 * 24 * 3600


def no_sleep() -> RetryPolicy:
    """In-invocation retries that never sleep, so that a test of retries takes no time."""
    return RetryPolicy(max_attempts=3, sleep=lambda _s: None, random=lambda: 0.5)


@dataclass
class Body:
    """What a durable function's body saw, across its replays."""

    runs: int = 0
    payloads: list[Any] = field(default_factory=list)


def run(handler: Callable[[Any, Any], Any], payload: Any) -> DurableFunctionTestResult:
    """Run ``handler`` (already under ``@durable_execution``) to its end on the local runner."""
    runner = DurableFunctionTestRunner(handler=handler)
    with runner:  # the runner's __enter__ is untyped: the name is bound before it
        arn = runner.run_async(input=json.dumps(payload), execution_timeout=EXECUTION_TIMEOUT)
        return runner.wait_for_result(arn, timeout=TIMEOUT)


@contextmanager
def started(handler: Callable[[Any, Any], Any], payload: Any) -> Iterator[tuple[DurableFunctionTestRunner, str]]:
    """Start ``handler`` on the local runner; yields the runner and the execution's ARN, for callbacks."""
    runner = DurableFunctionTestRunner(handler=handler)
    with runner:
        yield runner, runner.run_async(input=json.dumps(payload), execution_timeout=EXECUTION_TIMEOUT)


def answer_steps(result: DurableFunctionTestResult) -> list[StepOperation]:
    """The answer steps the execution checkpointed (a correct run has exactly one)."""
    return [op for op in result.get_all_operations() if isinstance(op, StepOperation) and op.name == ANSWER_STEP_NAME]


def result_json(result: DurableFunctionTestResult) -> Any:
    """The execution's result, decoded."""
    assert result.result is not None
    return json.loads(result.result)


__all__ = [
    "TIMEOUT",
    "Body",
    "DurableContext",
    "answer_steps",
    "no_sleep",
    "result_json",
    "run",
    "started",
]
