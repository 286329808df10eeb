"""A callback-kit worker answers Lambda durable functions' callbacks, end to end on AWS's local durable runner.

The durable function sends its callback id on a queue (:class:`CallbackQueue`, read as Lambda's event source
mapping reads SQS), the decorated worker answers through :class:`RunnerLambdaClient` (the runner seen as Lambda),
and the durable function's own result says what arrived.

Where the runner differs from AWS (absorbed in callback_kit/simulator/durable.py, not in the library): it answers
a closed callback with ResourceNotFoundException where Lambda answers CallbackTimeoutException; it does not
enforce the 1 MiB Result limit; and it logs callback ids itself at INFO (its own logger, not one callback-kit
writes to or controls; Lambda's service logs are not the worker's).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.logs import BOTOCORE_LOGGERS, fingerprint
from tests.durable.runner import CallbackQueue, RunnerLambdaClient, callback_failure, durable_order, running
from tests.reliability.harness import captured_logs

pytestmark = pytest.mark.slow


def _worker(fn: Any, client: RunnerLambdaClient, **options: Any) -> ck.CallbackHandler[Any, Any]:
    options.setdefault("heartbeat_interval", 0)
    return ck.callback_handler(lambda_client=client, **options)(fn)


def _run(fn: Any, order: dict[str, Any], *, timeout: int = 30, heartbeat_timeout: int = 0, **options: Any) -> Any:
    """Run one durable order against a worker of ``fn``: the durable function's result, the queue, the calls, and
    the failure the callback got, if any (from the execution's history)."""
    queue = CallbackQueue()
    with running(durable_order(queue, timeout=timeout, heartbeat_timeout=heartbeat_timeout)) as runner:
        client = RunnerLambdaClient(runner)
        queue.route(_worker(fn, client, **options))
        with queue.pumping():
            arn = runner.run_async(input=json.dumps(order), execution_timeout=60)
            result = runner.wait_for_result(arn, timeout=60)
            # Let the pump finish the batch it holds (its answer may come after the function ended).
            deadline = time.monotonic() + 10
            while queue.depth() and time.monotonic() < deadline:
                time.sleep(0.05)
        failure = callback_failure(runner, arn)
    return result, queue, client, failure


def test_a_return_value_is_the_callbacks_result() -> None:
    # GIVEN a durable function waiting on the worker, WHEN the worker returns
    result, queue, client, _ = _run(lambda order: {"approved": order["total"] < 100}, {"total": 12})
    # THEN the durable function resumed with the value, and the message was acknowledged
    assert result.status.name == "SUCCEEDED"
    assert json.loads(result.result) == {"result": {"approved": True}}
    assert queue.dead_letters == []
    assert len(queue.acknowledged) == 1
    assert client.calls == [("SendDurableExecutionCallbackSuccess", "ok")]


def test_an_exception_fails_the_callback_with_its_error_name() -> None:
    def check(order: dict[str, Any]) -> None:
        raise ck.TaskFailed("negative total", error="Order.Invalid")

    result, queue, client, failure = _run(check, {"total": -1})
    # THEN the callback failed with the worker's error name and message, and the function saw the failure
    assert failure == ("Order.Invalid", "negative total", None)
    assert json.loads(result.result) == {"failed": "CallbackExternalError", "message": "negative total"}
    assert queue.dead_letters == []
    assert client.calls == [("SendDurableExecutionCallbackFailure", "ok")]


def test_an_unexpected_exception_sends_its_class_and_stack_lines() -> None:
    def check(order: dict[str, Any]) -> None:
        raise KeyError("total")

    _, _, _, failure = _run(check, {})
    assert failure is not None
    error_type, message, stack = failure
    assert (error_type, message) == ("KeyError", "'total'")
    assert any('raise KeyError("total")' in line for line in stack)


def test_heartbeats_keep_a_callback_with_a_heartbeat_timeout_alive() -> None:
    # GIVEN a callback that fails after 1 s without a heartbeat, and a worker that needs 3 s
    def slow(order: dict[str, Any]) -> dict[str, Any]:
        time.sleep(3)
        return {"slow": True}

    result, _, client, _ = _run(slow, {}, heartbeat_timeout=1, heartbeat_interval=0.3)
    # THEN the worker's beats kept it waiting, and its answer arrived
    assert json.loads(result.result) == {"result": {"slow": True}}
    beats = [code for api, code in client.calls if api == "SendDurableExecutionCallbackHeartbeat"]
    assert len(beats) >= 5
    assert set(beats) == {"ok"}


def test_without_heartbeats_the_same_callback_times_out() -> None:
    # The control for the test above: the heartbeat timeout is real on the runner.
    def slow(order: dict[str, Any]) -> dict[str, Any]:
        time.sleep(2.5)
        return {"slow": True}

    result, queue, client, _ = _run(slow, {}, heartbeat_timeout=1)
    assert json.loads(result.result)["failed"] == "CallbackTimeoutError"
    # AND the late answer finds it closed: acknowledged (Lambda's CallbackTimeoutException), not redelivered
    assert client.calls == [("SendDurableExecutionCallbackSuccess", "CallbackTimeoutException")]
    assert queue.dead_letters == []
    assert len(queue.acknowledged) == 1


def test_an_already_answered_callback_is_acknowledged_not_redelivered() -> None:
    # GIVEN a callback someone else answers while the worker runs (the other copy of a duplicate delivery, say)
    queue = CallbackQueue()
    ids: list[str] = []
    with running(durable_order(queue)) as runner:
        client = RunnerLambdaClient(runner)

        def check(order: dict[str, Any]) -> dict[str, Any]:
            ck.send_success(ids[0], {"first": True}, kind="durable", lambda_client=client)
            return {"second": True}

        _capture_ids(queue, ids)
        queue.route(_worker(check, client))
        with queue.pumping():
            result = runner.run(input="{}", execution_timeout=60)
            _drain(queue)
    # THEN the first answer stands, the worker's is refused as closed, and the message is not handed back
    assert json.loads(result.result or "null") == {"result": {"first": True}}
    assert client.calls == [
        ("SendDurableExecutionCallbackSuccess", "ok"),
        ("SendDurableExecutionCallbackSuccess", "CallbackTimeoutException"),
    ]
    assert queue.dead_letters == []
    assert len(queue.acknowledged) == 1


def _capture_ids(queue: CallbackQueue, ids: list[str]) -> None:
    """Keep each callback id the durable function sends (what the test answers with, or looks for in logs)."""
    send = queue.send

    def capture(message: Any) -> str:
        ids.append(message["callbackId"])
        return send(message)

    queue.send = capture  # type: ignore[method-assign]


def _drain(queue: CallbackQueue) -> None:
    deadline = time.monotonic() + 10
    while queue.depth() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_the_callback_id_never_reaches_the_function_nor_a_log_line(capfd: pytest.CaptureFixture[str]) -> None:
    seen: list[Any] = []

    def check(order: dict[str, Any]) -> dict[str, Any]:
        seen.append((dict(order), ck.current_task().kind))
        raise ValueError("boom")  # a failure path logs more than a success

    queue = CallbackQueue()
    ids: list[str] = []
    with running(durable_order(queue)) as runner:
        client = RunnerLambdaClient(runner)
        _capture_ids(queue, ids)
        queue.route(_worker(check, client))
        with captured_logs(*BOTOCORE_LOGGERS) as handler, queue.pumping():
            runner.run(input=json.dumps({"total": 3}), execution_timeout=60)
            _drain(queue)
    [callback_id] = ids
    assert seen == [({"total": 3}, "durable")]
    assert handler.lines
    assert not [line for line in handler.lines if callback_id in line]
    assert any(fingerprint(callback_id) in line for line in handler.lines)
    # callback-kit's JSON lines on stdout/stderr; the runner's own logger is not captured (see the docstring)
    printed = capfd.readouterr()
    callback_kit_lines = [line for line in (printed.out + printed.err).splitlines() if '"service":' in line]
    assert not [line for line in callback_kit_lines if callback_id in line]
