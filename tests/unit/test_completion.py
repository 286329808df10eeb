"""Completion calls: retries with backoff on transient errors, closed tasks, rejected output, give-up."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

import callback_kit as ck
from callback_kit.exceptions import (
    ERROR_OUTPUT_REJECTED,
    CallbackDeliveryError,
    InvalidOutputError,
    InvalidTokenError,
)
from callback_kit.outcome import Failure, Success
from callback_kit.send import send_failure, send_heartbeat, send_success
from callback_kit.task.classify import THROTTLE_CODES
from callback_kit.task.completion import Completer, Delivery, RetryPolicy
from callback_kit.testing import FakeStepFunctions


class Sleeps:
    """Records the pauses instead of sleeping them."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def sfn() -> FakeStepFunctions:
    return FakeStepFunctions()


def completer(sfn: FakeStepFunctions, sleeps: Sleeps, attempts: int = 6) -> Completer:
    return Completer(sfn, RetryPolicy(max_attempts=attempts, sleep=sleeps, random=lambda: 1.0))


TRANSIENT = [
    "ThrottlingException",
    "KmsThrottlingException",
    "InternalFailure",
    "ServiceUnavailable",
    EndpointConnectionError(endpoint_url="https://states.us-east-1.amazonaws.com"),
    ConnectionClosedError(endpoint_url="https://states.us-east-1.amazonaws.com"),
    ReadTimeoutError(endpoint_url="https://states.us-east-1.amazonaws.com"),
]


@pytest.mark.parametrize("fault", TRANSIENT, ids=lambda f: f if isinstance(f, str) else type(f).__name__)
def test_transient_errors_are_retried_with_exponential_backoff(
    fault: str | Exception, sfn: FakeStepFunctions, sleeps: Sleeps
) -> None:
    # GIVEN a task whose first three SendTaskSuccess calls fail transiently
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", fault, times=3)
    # WHEN the success is completed
    delivery = completer(sfn, sleeps).complete(token, Success('{"ok":1}'))
    # THEN it is delivered on the fourth attempt, after doubling pauses
    assert delivery is Delivery.DELIVERED
    assert sfn.outcome(token) == ("success", {"ok": 1})
    assert sleeps.pauses == [0.1, 0.2, 0.4]
    assert len(sfn.calls_for(token)) == 4


def test_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=5.0, random=lambda: 0.5)
    assert policy.delay(0) == 0.05
    assert policy.delay(20) == 2.5


def test_giving_up_after_the_attempt_budget_raises_for_redelivery(sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    token = sfn.open_task()
    sfn.inject("SendTaskFailure", "InternalFailure", times=99)
    with pytest.raises(CallbackDeliveryError) as info:
        completer(sfn, sleeps, attempts=4).complete(token, Failure("E", "c"))
    assert info.value.code == "InternalFailure"
    assert info.value.api == "SendTaskFailure"
    assert len(sfn.calls_for(token)) == 4
    assert len(sleeps.pauses) == 3
    assert sfn.outcome(token) is None


def test_no_retry_starts_past_the_deadline(sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    # GIVEN a deadline closer than the first backoff pause
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", "ThrottlingException", times=5)
    policy = RetryPolicy(sleep=sleeps, random=lambda: 1.0, clock=lambda: 100.0)
    # WHEN completing with that deadline
    with pytest.raises(CallbackDeliveryError):
        Completer(sfn, policy).complete(token, Success("{}"), deadline=100.05)
    # THEN it gave up at once rather than sleep past it
    assert sleeps.pauses == []


@pytest.mark.parametrize("code", sorted(THROTTLE_CODES))
def test_every_throttle_the_limiter_paces_on_is_retried(code: str, sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    # GIVEN a task whose first two SendTaskSuccess calls are refused with one of botocore's throttling codes
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", code, times=2)
    # WHEN the success is completed
    delivery = completer(sfn, sleeps).complete(token, Success('{"ok":1}'))
    # THEN the throttles are retried, as the rate limiter slows down for them, and the third attempt lands
    assert delivery is Delivery.DELIVERED
    assert len(sfn.calls_for(token)) == 3


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist"])
def test_closed_task_is_acknowledged_not_raised(code: str, sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", code)
    assert completer(sfn, sleeps).complete(token, Success("{}")) is Delivery.ALREADY_CLOSED
    assert sleeps.pauses == []
    assert len(sfn.calls_for(token)) == 1


def test_invalid_token_is_not_taken_for_a_closed_task(sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    # GIVEN a string Step Functions never issued (a token still URL-encoded, say): the real task still waits
    bogus = "AQB%2Bquoted%3D%3D"
    # WHEN a completion is sent for it
    # THEN it raises InvalidTokenError (a delivery error: the message goes back and ends in the DLQ), no retry
    with pytest.raises(InvalidTokenError) as info:
        completer(sfn, sleeps).complete(bogus, Success("{}"))
    assert info.value.code == "InvalidToken"
    assert isinstance(info.value, CallbackDeliveryError)
    assert sleeps.pauses == []
    assert len(sfn.calls_for(bogus)) == 1


def test_invalid_token_heartbeat_does_not_cancel_the_task(sfn: FakeStepFunctions) -> None:
    assert Completer(sfn).heartbeat("not-a-token") is True


def test_send_functions_raise_on_an_invalid_token(sfn: FakeStepFunctions) -> None:
    with pytest.raises(InvalidTokenError):
        ck.send_success("not-a-token", {"ok": True}, client=sfn)
    with pytest.raises(InvalidTokenError):
        ck.send_failure("not-a-token", "Order.Invalid", client=sfn)


def test_every_attempt_under_a_deadline_has_a_timeout_that_fits(sfn: FakeStepFunctions) -> None:
    # GIVEN a clock at 0, a deadline at 1 s, and calls that time out (each attempt costs its whole timeout)
    now = [0.0]
    policy = RetryPolicy(sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0], random=lambda: 0.5)
    sfn.latency = 10.0
    sfn.sleep = lambda s: now.__setitem__(0, now[0] + s)
    token = sfn.open_task()
    # WHEN a success is sent under the deadline
    with pytest.raises(CallbackDeliveryError):
        Completer(sfn, policy).complete(token, Success("{}"), deadline=1.0)
    # THEN the first attempt was bounded by the time left, and nothing ran past the deadline
    assert sfn.timeouts[0] == pytest.approx(1.0)
    assert now[0] <= 1.0


def test_no_attempt_starts_without_time_left(sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    token = sfn.open_task()
    with pytest.raises(CallbackDeliveryError, match="no time left"):
        completer(sfn, sleeps).complete(token, Success("{}"), deadline=time.monotonic() - 1)
    assert sfn.calls_for(token) == []


def test_closed_on_retry_after_a_lost_response_counts_as_delivered(sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    # GIVEN a first attempt that lands but whose response is lost
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", ReadTimeoutError(endpoint_url="x"), landed=True)
    # WHEN completing
    delivery = completer(sfn, sleeps).complete(token, Success('{"v":1}'))
    # THEN the retry's TaskTimedOut is understood as "the first one landed"
    assert delivery is Delivery.DELIVERED
    assert sfn.outcome(token) == ("success", {"v": 1})
    assert [c.result for c in sfn.calls_for(token)] == ["ReadTimeoutError", "TaskTimedOut"]


@pytest.mark.parametrize("code", ["InvalidOutput", "ValidationException"])
def test_rejected_output_falls_back_to_a_failure_callback(code: str, sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", code)
    assert completer(sfn, sleeps).complete(token, Success("{}")) is Delivery.DELIVERED
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[:2] == ("failure", ERROR_OUTPUT_REJECTED)
    assert code in outcome[2]["errorMessage"]


def test_rejected_failure_is_resent_minimal_then_raised(sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    token = sfn.open_task()
    sfn.inject("SendTaskFailure", "ValidationException")
    assert completer(sfn, sleeps).complete(token, Failure("E", "c")) is Delivery.DELIVERED
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[1] == ERROR_OUTPUT_REJECTED
    other = sfn.open_task()
    sfn.inject("SendTaskFailure", "ValidationException", times=2)
    with pytest.raises(CallbackDeliveryError):
        completer(sfn, sleeps).complete(other, Failure("E", "c"))


@pytest.mark.parametrize("code", ["KmsAccessDeniedException", "KmsInvalidStateException", "AccessDeniedException"])
def test_configuration_faults_are_raised_at_once(code: str, sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", code)
    with pytest.raises(CallbackDeliveryError) as info:
        completer(sfn, sleeps).complete(token, Success("{}"))
    assert info.value.code == code
    assert sleeps.pauses == []


def test_heartbeat_reports_closed_and_survives_errors(sfn: FakeStepFunctions, sleeps: Sleeps) -> None:
    token = sfn.open_task()
    c = completer(sfn, sleeps)
    assert c.heartbeat(token) is True
    sfn.inject("SendTaskHeartbeat", "ThrottlingException")
    assert c.heartbeat(token) is True, "a throttled beat is not a closed task"
    sfn.inject("SendTaskHeartbeat", RuntimeError("anything at all"))
    assert c.heartbeat(token) is True
    sfn.close_task(token)
    assert c.heartbeat(token) is False
    assert sleeps.pauses == [], "heartbeats are never retried: the next one is never far"


def test_public_send_functions(sfn: FakeStepFunctions) -> None:
    ok, bad, beat = sfn.open_task(), sfn.open_task(), sfn.open_task()
    assert send_success(ok, {"a": 1}, client=sfn) is Delivery.DELIVERED
    assert send_success(ok, {"a": 2}, client=sfn) is Delivery.ALREADY_CLOSED
    assert send_failure(bad, "Order.Invalid", "why", client=sfn) is Delivery.DELIVERED
    assert sfn.outcome(bad) == ("failure", "Order.Invalid", "why")
    assert send_heartbeat(beat, client=sfn) is Delivery.DELIVERED
    sfn.close_task(beat)
    assert send_heartbeat(beat, client=sfn) is Delivery.ALREADY_CLOSED


def test_send_failure_from_an_exception(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    send_failure(token, KeyError("sku"), client=sfn)
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[1] == "KeyError"
    assert outcome[2]["errorType"] == "KeyError"


def test_send_success_refuses_bad_output_before_sending(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    with pytest.raises(InvalidOutputError) as info:
        send_success(token, "x" * 300_000, client=sfn)
    assert info.value.error == "CallbackKit.OutputTooLarge"
    with pytest.raises(InvalidOutputError):
        send_success(token, object(), client=sfn)
    with pytest.raises(ValueError, match="reserved"):
        send_failure(token, "States.Runtime", client=sfn)
    assert sfn.calls == []


def test_default_client_is_lazy_and_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    from callback_kit.task import clients

    monkeypatch.setattr(clients, "_default_client", None)
    first = clients.default_client()
    assert clients.default_client() is first
    retries = getattr(first.meta.config, "retries", None)
    assert retries is not None
    assert retries.get("total_max_attempts") == 1


@pytest.mark.parametrize(
    ("fault", "landed"),
    [
        ("InternalFailure", True),
        (ReadTimeoutError(endpoint_url="x"), True),
        (ConnectionClosedError(endpoint_url="x"), True),
        ("ThrottlingException", False),
        ("KmsThrottlingException", False),
        (EndpointConnectionError(endpoint_url="x"), False),
    ],
    ids=["5xx", "read-timeout", "connection-closed", "throttled", "kms-throttled", "never-connected"],
)
def test_closed_on_retry_is_delivered_only_if_the_first_attempt_may_have_landed(
    fault: str | Exception, landed: bool, sfn: FakeStepFunctions, sleeps: Sleeps
) -> None:
    # GIVEN a first attempt that failed without being carried out, and a task that closed meanwhile
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", fault)
    sfn.inject("SendTaskSuccess", "TaskTimedOut")
    # WHEN completing
    delivery = completer(sfn, sleeps).complete(token, Success("{}"))
    # THEN "closed" on the retry means "delivered" only where the first attempt may have reached Step Functions
    assert delivery is (Delivery.DELIVERED if landed else Delivery.ALREADY_CLOSED)
