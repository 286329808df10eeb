"""Time on a real state machine: heartbeats that keep a long task alive, and the Lambda deadline guard.

moto arms ``HeartbeatSeconds`` and ``TimeoutSeconds`` with real wall-clock timers (accurate to about 0.1 s), so
these tests use 2 s heartbeat timeouts and functions that run a few seconds. HeartbeatSeconds counts from the
task's start, as on AWS, so the time a message waits for delivery counts too: 2 s leaves room for a loaded machine.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.exceptions import ERROR_LAMBDA_DEADLINE
from callback_kit.simulator import CallbackCall, Delivery, LocalStepFunctions
from callback_kit.testing import FakeLambdaContext
from tests.e2e.asl import machine, sqs_task

pytestmark = pytest.mark.e2e

HEARTBEAT_SECONDS = 2
WORK_SECONDS = 3.0 * HEARTBEAT_SECONDS


def slow(payload: dict[str, Any]) -> dict[str, Any]:
    """Work for WORK_SECONDS, or until Step Functions closes the task."""
    started = time.monotonic()
    while time.monotonic() - started < WORK_SECONDS and not ck.is_cancelled():
        time.sleep(0.05)
    return {"worked": round(time.monotonic() - started, 1)}


def test_heartbeats_keep_a_task_alive_three_times_its_heartbeat_timeout(local_sfn: LocalStepFunctions) -> None:
    """With heartbeats every 0.4 s, a function running 6 s on a task with HeartbeatSeconds=2 SUCCEEDS."""
    # GIVEN a task with HeartbeatSeconds=2 and a handler that beats every 0.4 s while its function works for 6 s
    queue = local_sfn.create_queue("slow-beating")
    local_sfn.route_sqs(queue, ck.callback_handler(heartbeat_interval=0.4)(slow))
    callbacks: list[CallbackCall] = []
    local_sfn.on_callback(callbacks.append)
    arn = local_sfn.create_state_machine("beating", machine(sqs_task(queue, heartbeat=HEARTBEAT_SECONDS, timeout=20)))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 1}, timeout=18)

    # THEN it outlived three heartbeat timeouts and succeeded; the simulator accepted every beat
    assert result["status"] == "SUCCEEDED"
    assert result["output"]["worked"] >= WORK_SECONDS
    beats = [c for c in callbacks if c.kind == "heartbeat"]
    assert len(beats) >= 6
    assert all(c.rejected is None for c in beats)


def test_without_heartbeats_the_same_task_times_out(local_sfn: LocalStepFunctions) -> None:
    """The control for the test above: heartbeats off, the task fails with States.Timeout after about 2 s."""
    # GIVEN the same task and function, with heartbeats off
    queue = local_sfn.create_queue("slow-silent")
    local_sfn.route_sqs(queue, ck.callback_handler(heartbeat_interval=0)(slow))
    callbacks: list[CallbackCall] = []
    local_sfn.on_callback(callbacks.append)
    deliveries: list[Delivery] = []
    finished = threading.Event()

    def on_delivery(delivery: Delivery) -> None:
        deliveries.append(delivery)
        finished.set()

    local_sfn.on_delivery(on_delivery)
    arn = local_sfn.create_state_machine("silent", machine(sqs_task(queue, heartbeat=HEARTBEAT_SECONDS, timeout=20)))

    with local_sfn.pump():
        # WHEN an execution runs
        started = time.monotonic()
        result = local_sfn.wait_for_execution(local_sfn.start_execution(arn, {"n": 1}), timeout=18)
        elapsed = time.monotonic() - started
        assert finished.wait(timeout=WORK_SECONDS + 2)

    # THEN Step Functions gave up after HeartbeatSeconds, long before the function was done
    assert result["status"] == "FAILED"
    assert result["error"] == "States.Timeout"
    assert elapsed < WORK_SECONDS
    # AND the function's late success was answered TaskTimedOut, as on AWS, which the handler acknowledged
    # instead of raising (a crash here is what hand-written workers are known for)
    assert [(c.kind, c.rejected) for c in callbacks] == [("success", "TaskTimedOut")]
    assert deliveries[0].error is None
    assert deliveries[0].result == {"batchItemFailures": []}


def test_lambda_deadline_fails_the_task_promptly(local_sfn: LocalStepFunctions) -> None:
    """A Lambda about to time out fails its running task with CallbackKit.LambdaDeadline at once.

    Without the guard, Lambda would kill the function and the execution would wait for the task's TimeoutSeconds
    (here 10 s; by default on AWS, about a year).
    """
    # GIVEN a long task (TimeoutSeconds=10, no heartbeats) and a Lambda context with 2.5 s left, so that the
    # 2 s deadline margin is reached about 0.5 s into a 6 s function
    queue = local_sfn.create_queue("short-lambda")
    handler = ck.callback_handler(heartbeat_interval=0, deadline_margin=2)(slow)

    def lambda_with_little_time(event: Any, context: Any) -> Any:
        return handler(event, FakeLambdaContext(remaining_ms=2_500, function_name="short-lambda"))

    local_sfn.route_sqs(queue, lambda_with_little_time)
    deliveries: list[Delivery] = []
    delivered = threading.Event()

    def on_delivery(delivery: Delivery) -> None:
        deliveries.append(delivery)
        delivered.set()

    local_sfn.on_delivery(on_delivery)
    arn = local_sfn.create_state_machine("deadline", machine(sqs_task(queue, timeout=10)))

    # WHEN an execution runs
    started = time.monotonic()
    result = local_sfn.run(arn, {"n": 1}, timeout=9)
    elapsed = time.monotonic() - started

    # THEN it failed with the documented error well before the task timeout, and the record was acknowledged (the
    # task has its answer: redelivering the message would only run the function again against a closed task)
    assert result["status"] == "FAILED"
    assert result["error"] == ERROR_LAMBDA_DEADLINE
    assert delivered.wait(timeout=5)  # the execution can end while the handler is still returning
    assert deliveries[0].seconds < 2.5  # the handler returned within the Lambda's remaining time
    assert elapsed < WORK_SECONDS  # the execution did not wait for the function to finish
    assert deliveries[0].result == {"batchItemFailures": []}
