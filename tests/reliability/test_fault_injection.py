"""Fault injection: every fault Step Functions (or the network) can answer, on the Nth call of each callback API,
for each source, with what was sent, what the handler returned or raised, and the per-task invariant.

Each scenario runs a batch of three tasks (one for EventBridge, direct invokes and activity tasks; an activity
task is run by ``ActivityWorker.run_one``, and, as there is no message to redeliver, "handed back" means the worker
reports it undeliverable and the state machine's TimeoutSeconds/HeartbeatSeconds end it). The fault hits the Nth call of
one API, chosen so that it lands on a given record ("rec0", "rec1"). Records run one at a time
(``max_concurrency=1``) so that "the Nth call" names the same request on every run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

import callback_kit as ck
from callback_kit.activity import ActivityWorker
from callback_kit.exceptions import ERROR_OUTPUT_REJECTED
from callback_kit.task.classify import THROTTLE_CODES
from tests.reliability.harness import (
    ERROR_USER,
    Delivery,
    FakeClock,
    LambdaSource,
    ScriptedStepFunctions,
    build_event,
    captured_logs,
    check_task_invariant,
    invoke,
    manual_scheduler,
    new_token,
    no_sleep_policy,
)

MAX_ATTEMPTS = 4
HEARTBEAT_INTERVAL = 10.0
Kind = Literal["transient", "closed", "invalid", "rejected", "config"]
Variant = Literal["once", "exhausted", "landed"]
Api = Literal["SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"]


@dataclass(frozen=True)
class Fault:
    """One thing that can go wrong with a callback call."""

    name: str
    kind: Kind
    make: Callable[[], str | BaseException]
    #: Whether the request may have reached Step Functions before the answer was lost.
    may_have_landed: bool = False


URL = "https://states.us-east-1.amazonaws.com/"
FAULTS = (
    Fault("Throttling", "transient", lambda: "ThrottlingException"),
    Fault("InternalFailure", "transient", lambda: "InternalFailure", may_have_landed=True),
    Fault("ServiceUnavailable", "transient", lambda: "ServiceUnavailable"),
    Fault("ConnectFailed", "transient", lambda: EndpointConnectionError(endpoint_url=URL)),
    Fault("ConnectionDropped", "transient", lambda: ConnectionClosedError(endpoint_url=URL), may_have_landed=True),
    Fault("ReadTimeout", "transient", lambda: ReadTimeoutError(endpoint_url=URL), may_have_landed=True),
    Fault("KmsThrottling", "transient", lambda: "KmsThrottlingException"),
    Fault("TaskTimedOut", "closed", lambda: "TaskTimedOut"),
    Fault("TaskDoesNotExist", "closed", lambda: "TaskDoesNotExist"),
    # Not a token Step Functions issued: never "closed" (the real task still waits); the message goes to the DLQ.
    Fault("InvalidToken", "invalid", lambda: "InvalidToken"),
    Fault("InvalidOutput", "rejected", lambda: "InvalidOutput"),
    Fault("ValidationException", "rejected", lambda: "ValidationException"),
    Fault("KmsAccessDenied", "config", lambda: "KmsAccessDeniedException"),
)


@dataclass(frozen=True)
class Scenario:
    api: Api
    fault: Fault
    variant: Variant

    @property
    def id(self) -> str:
        return f"{self.api.removeprefix('SendTask')}-{self.fault.name}-{self.variant}"


def _scenarios() -> list[Scenario]:
    out: list[Scenario] = []
    for api in ("SendTaskSuccess", "SendTaskFailure"):
        for fault in FAULTS:
            out.append(Scenario(api, fault, "once"))
            if fault.kind == "transient":
                out.append(Scenario(api, fault, "exhausted"))
            if fault.may_have_landed:
                out.append(Scenario(api, fault, "landed"))
    # Heartbeats are never retried (the next beat is never far), so one fault is all there is to test.
    out.extend(Scenario("SendTaskHeartbeat", fault, "once") for fault in FAULTS)
    return out


SCENARIOS = _scenarios()
#: (source, index of the record the fault hits): the first and a middle record of batches.
TARGETS: list[tuple[LambdaSource | Literal["activity"], int]] = [
    ("sqs", 0),
    ("sqs", 1),
    ("fifo", 0),
    ("fifo", 1),
    ("eventbridge", 0),
    ("direct", 0),
    ("activity", 0),
]
ACTIVITY_ARN = "arn:aws:states:us-east-1:123456789012:activity:reliability"


def _expected_end(scenario: Scenario) -> str:
    """How the faulted task must end: an applied outcome, closed by Step Functions, or handed back."""
    fault, api = scenario.fault, scenario.api
    intended = "failure" if api == "SendTaskFailure" else "success"
    if api == "SendTaskHeartbeat":
        return "closed" if fault.kind == "closed" else intended
    if fault.kind == "closed":
        return "closed"
    if scenario.variant == "exhausted" and _throttle(scenario):
        return intended  # throttles never use up attempts: retried while time remains
    if fault.kind in ("config", "invalid") or scenario.variant == "exhausted":
        return "redelivered"
    if fault.kind == "rejected":
        return "failure"  # the fallback: a failure callback with CallbackKit.OutputRejected
    return intended


def _expected_calls(scenario: Scenario) -> list[tuple[str, str]]:
    """The (API, answer) sequence of callback calls for the faulted task."""
    api, fault = scenario.api, scenario.fault
    code = _code(fault.make())
    if api == "SendTaskHeartbeat":
        beats = [("SendTaskHeartbeat", code)]
        if fault.kind == "closed":
            return beats  # cancelled: no second beat, no completion
        if code == "ThrottlingException":
            beats.append(("SendTaskHeartbeat", "ok"))  # a throttled beat is retried within half an interval
        return [*beats, ("SendTaskHeartbeat", "ok"), ("SendTaskSuccess", "ok")]
    if fault.kind in ("closed", "config", "invalid"):
        return [(api, code)]
    if fault.kind == "rejected":
        return [(api, code), ("SendTaskFailure", "ok")]
    if scenario.variant == "exhausted" and _throttle(scenario):
        return [*[(api, code)] * MAX_ATTEMPTS, (api, "ok")]
    if scenario.variant == "exhausted":
        return [(api, code)] * MAX_ATTEMPTS
    if scenario.variant == "landed":
        return [(api, code), (api, "TaskTimedOut")]
    return [(api, code), (api, "ok")]


def _throttle(scenario: Scenario) -> bool:
    """Whether the scenario's fault is the quota's throttle (not a fault of the call: see RetryPolicy)."""
    return _code(scenario.fault.make()) in THROTTLE_CODES


def _code(error: str | BaseException) -> str:
    return error if isinstance(error, str) else type(error).__name__


@pytest.mark.parametrize(("source", "target"), TARGETS, ids=[f"{s}-rec{t}" for s, t in TARGETS])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_fault_on_nth_call(scenario: Scenario, source: LambdaSource | Literal["activity"], target: int) -> None:
    # GIVEN a batch of tasks whose function succeeds, raises, or heartbeats, and a fault on the call of one record
    fake = ScriptedStepFunctions()
    clock = FakeClock()
    scheduler = manual_scheduler(clock)
    size = 3 if source in ("sqs", "fifo") else 1
    tokens = [new_token(fake) for _ in range(size)]
    cancelled_seen: list[bool] = []

    def work(payload: dict[str, Any]) -> dict[str, Any]:
        if scenario.api == "SendTaskHeartbeat":
            for _ in range(2):  # two beats per task, sent by the scheduler as time passes
                clock.advance(HEARTBEAT_INTERVAL)
                scheduler.run_pending()
            cancelled_seen.append(ck.is_cancelled())
        if scenario.api == "SendTaskFailure":
            raise ck.TaskFailed("no stock", error=ERROR_USER)
        return {"n": payload["n"]}

    interval = HEARTBEAT_INTERVAL if scenario.api == "SendTaskHeartbeat" else 0
    handler = ck.callback_handler(
        client=fake,
        retry=no_sleep_policy(MAX_ATTEMPTS),
        scheduler=scheduler,
        heartbeat_interval=interval,
        max_concurrency=1,
    )(work)
    nth = 2 * target + 1 if scenario.api == "SendTaskHeartbeat" else target + 1
    fault = scenario.fault
    if fault.kind == "closed":
        fake.close_on(scenario.api, nth, _code(fault.make()))
    else:
        times = MAX_ATTEMPTS if scenario.variant == "exhausted" else 1
        fake.inject(scenario.api, fault.make(), times=times, skip=nth - 1, landed=scenario.variant == "landed")
    record_ids: list[str | None] = [None]
    # WHEN the event is handled (the activity task is run by an ActivityWorker)
    with captured_logs() as logs:
        if source == "activity":
            worker = ActivityWorker(
                ACTIVITY_ARN,
                work,
                client=fake,
                retry=no_sleep_policy(MAX_ATTEMPTS),
                scheduler=scheduler,
                heartbeat_interval=interval,
            )
            start = len(fake.calls)
            result = worker.run_one({"taskToken": tokens[0], "input": json.dumps({"n": 0})})
            # An activity cannot be redelivered: an undeliverable answer is left to the task's own timeouts.
            delivery = Delivery(result.status, None, list(fake.calls[start:]))
        else:
            event, record_ids = build_event(source, [{"TaskToken": t, "n": i} for i, t in enumerate(tokens)])
            delivery = invoke(fake, handler, event)

    # THEN the faulted task got exactly the expected calls and ended as expected
    faulted = tokens[target]
    sent = [(c.api, c.result) for c in delivery.calls if c.token == faulted]
    assert sent == _expected_calls(scenario)
    expected_end = _expected_end(scenario)
    redelivered = _handed_back(source, delivery, record_ids)
    end = check_task_invariant(fake, faulted, [delivery], [redelivered[target]])
    assert end == expected_end
    assert redelivered[target] == (expected_end == "redelivered")
    if expected_end == "failure":
        error = fake.outcome(faulted)[1]  # type: ignore[index]
        assert error == (ERROR_OUTPUT_REJECTED if fault.kind == "rejected" else ERROR_USER)
    if scenario.api == "SendTaskHeartbeat":
        # the function saw the cancellation only when Step Functions said the task was closed
        assert cancelled_seen[target] == (fault.kind == "closed")

    # AND every other task ended with its own outcome, except FIFO records after one that must be redelivered
    for i, token in enumerate(tokens):
        if i == target:
            continue
        end = check_task_invariant(fake, token, [delivery], [redelivered[i]])
        if source == "fifo" and i > target and expected_end == "redelivered":
            assert end == "redelivered"
            assert fake.calls_for(token, "SendTaskSuccess") == fake.calls_for(token, "SendTaskFailure") == []
        else:
            assert end == ("failure" if scenario.api == "SendTaskFailure" else "success")
            assert not redelivered[i]

    # AND the handler's answer says exactly that: batch item failures, or a raise for single invokes
    if source == "activity":
        assert delivery.response.redeliver == (expected_end == "redelivered")
    elif source in ("eventbridge", "direct"):
        assert (delivery.raised is not None) == (expected_end == "redelivered")
        if delivery.raised is not None:
            assert isinstance(delivery.raised, ck.CallbackDeliveryError)
    else:
        assert delivery.raised is None
    # AND configuration faults are surfaced loudly
    if fault.kind == "config" and scenario.api != "SendTaskHeartbeat":
        assert any(r.levelname == "ERROR" and "KMS" in r.getMessage() for r in logs.records)


def _handed_back(source: str, delivery: Delivery, record_ids: list[str | None]) -> list[bool]:
    if source == "activity":
        return [delivery.response.redeliver]
    if source in ("eventbridge", "direct"):
        return [delivery.raised is not None]
    return [rid in delivery.redelivered_ids for rid in record_ids]


def test_redelivered_message_is_answered_on_the_next_delivery() -> None:
    # GIVEN an SQS message whose success could not be delivered within the retry budget
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    fake.inject("SendTaskSuccess", "ServiceUnavailable", times=MAX_ATTEMPTS)

    def work(payload: dict[str, Any]) -> dict[str, Any]:
        return {"n": payload["n"]}

    handler = ck.callback_handler(client=fake, retry=no_sleep_policy(MAX_ATTEMPTS), heartbeat_interval=0)(work)
    event, _ = build_event("sqs", [{"TaskToken": token, "n": 1}])
    first = invoke(fake, handler, event)

    # WHEN SQS redelivers it and Step Functions has recovered
    second = invoke(fake, handler, event)

    # THEN the first delivery handed it back, the second answered it, and the task has exactly one outcome
    assert first.redelivered_ids
    assert not second.redelivered_ids
    assert check_task_invariant(fake, token, [first, second], [True, False]) == "success"
    assert fake.outcome(token) == ("success", {"n": 1})


def test_duplicate_delivery_without_idempotency_is_acknowledged_as_closed() -> None:
    # GIVEN tasks answered by a first delivery of their message, and one answered from another sandbox
    fake = ScriptedStepFunctions()
    runs: list[int] = []

    def work(payload: dict[str, Any]) -> dict[str, Any]:
        runs.append(payload["n"])
        return {"n": payload["n"]}

    handler = ck.callback_handler(client=fake, retry=no_sleep_policy(), heartbeat_interval=0)(work)
    sources: tuple[LambdaSource, ...] = ("sqs", "eventbridge", "direct")
    for source in sources:
        token = new_token(fake)
        event, _ = build_event(source, [{"TaskToken": token, "n": 7}])
        first = invoke(fake, handler, event)

        # WHEN the same message is delivered again to this (warm) sandbox (at-least-once delivery)
        second = invoke(fake, handler, event)

        # THEN it is acknowledged without a second run or call: this process answered the token already
        assert second.calls == []
        assert second.raised is None
        assert not second.redelivered_ids
        assert check_task_invariant(fake, token, [first, second], [False, False]) == "success"

        # AND a duplicate reaching a sandbox that never saw the token runs, is answered "closed", and is acknowledged
        elsewhere = new_token(fake)
        ck.send_success(elsewhere, {"n": 0}, client=fake)
        event, _ = build_event(source, [{"TaskToken": elsewhere, "n": 7}])
        third = invoke(fake, handler, event)
        assert [(c.api, c.result) for c in third.calls] == [("SendTaskSuccess", "TaskTimedOut")]
        assert third.raised is None
        assert not third.redelivered_ids
    # AND (without idempotency) only the other sandbox's duplicate ran the function again: that is what
    # Idempotency is for
    assert runs == [7] * 6
