"""The schedule fake's ground truth: what landed, what was ambiguous, timeouts, closing, and the plans' order."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from tests.schedules.fake import ScheduleFake
from tests.schedules.plan import CallPlan, generate

SCALE = 0.01


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_plans_apply_in_order_before_and_after_landing() -> None:
    # GIVEN a token whose first completion is throttled, second lands then loses its response, third is clean
    fake = ScheduleFake(SCALE)
    plans = (CallPlan(0.0, "ThrottlingException"), CallPlan(0.0, "InternalFailure", after=True), CallPlan(0.0))
    fake.open_task("t", completions=plans)
    # WHEN three successes are sent
    with pytest.raises(ClientError) as first:
        fake.send_task_success(taskToken="t", output="{}")
    with pytest.raises(ClientError) as second:
        fake.send_task_success(taskToken="t", output="{}")
    with pytest.raises(ClientError) as third:
        fake.send_task_success(taskToken="t", output="{}")
    # THEN the throttle did not land, the 5xx did (ambiguous), and the third found the task answered
    assert [_code(first), _code(second), _code(third)] == ["ThrottlingException", "InternalFailure", "TaskTimedOut"]
    assert [(c.landed, c.ambiguous) for c in fake.calls] == [(False, False), (True, True), (False, False)]


def test_a_connection_never_made_is_not_ambiguous() -> None:
    # GIVEN a call that cannot connect
    fake = ScheduleFake(SCALE)
    fake.open_task("t", completions=(CallPlan(0.0, "EndpointConnectionError"),))
    # WHEN it is made / THEN it raises botocore's error, did not land, and is not ambiguous
    with pytest.raises(EndpointConnectionError):
        fake.send_task_failure(taskToken="t", error="E", cause="")
    assert (fake.calls[0].landed, fake.calls[0].ambiguous) == (False, False)


def test_with_timeout_gives_up_after_the_timeout_and_may_land_later() -> None:
    # GIVEN a call that takes 5 schedule seconds, made with a 1 s timeout
    fake = ScheduleFake(SCALE)
    fake.open_task("t", completions=(CallPlan(5.0),))
    began = time.monotonic()
    # WHEN it is made through with_timeout
    with pytest.raises(ReadTimeoutError):
        fake.with_timeout(1.0 * SCALE).send_task_success(taskToken="t", output="{}")
    gave_up = time.monotonic() - began
    # THEN it gave up after about the timeout, recorded it, and lands when its latency is over
    call = fake.calls[0]
    assert gave_up < 4.0 * SCALE
    assert (call.timeout, call.ambiguous, call.landed) == (1.0 * SCALE, True, False)
    deadline = time.monotonic() + 1.0
    while not fake.quiet and time.monotonic() < deadline:
        time.sleep(0.005)
    assert call.landed


def test_a_task_closes_at_its_time_and_unknown_tokens_are_invalid() -> None:
    # GIVEN a task that Step Functions closes 1 schedule second after t0
    fake = ScheduleFake(SCALE)
    fake.open_task("t", close_at=1.0, close_code="TaskDoesNotExist")
    # WHEN a heartbeat comes before and another after, and a call names a token never issued
    fake.send_task_heartbeat(taskToken="t")
    time.sleep(1.5 * SCALE)
    with pytest.raises(ClientError) as closed:
        fake.send_task_heartbeat(taskToken="t")
    with pytest.raises(ClientError) as invalid:
        fake.send_task_success(taskToken="nope", output="{}")
    # THEN the first landed, the second was told the task is closed, the third InvalidToken
    assert fake.calls[0].landed
    assert (_code(closed), _code(invalid)) == ("TaskDoesNotExist", "InvalidToken")


def test_a_seed_always_gives_the_same_schedule() -> None:
    # GIVEN / WHEN a seed's schedule is drawn twice / THEN it is the same, and another seed differs
    assert generate(123) == generate(123)
    assert generate(123) != generate(124)


def test_a_bucket_refuses_calls_beyond_its_tokens_before_they_reach_the_task() -> None:
    # GIVEN a fake whose bucket holds 2 tokens and refills one per 100 schedule seconds
    fake = ScheduleFake(SCALE, bucket=(2.0, 0.01, 1.0))
    fake.open_task("t", heartbeats=(CallPlan(0.0, "InternalFailure"),))
    fake.open_task("u")
    # WHEN three calls come at once
    fake.send_task_success(taskToken="u", output="{}")
    with pytest.raises(ClientError) as closed:
        fake.send_task_heartbeat(taskToken="u")
    with pytest.raises(ClientError) as first_beat:
        fake.send_task_heartbeat(taskToken="t")
    # THEN the first two took a token and reached their task (the second found it answered), the third was
    # throttled without landing
    assert _code(closed) == "TaskTimedOut"
    assert _code(first_beat) == "ThrottlingException"
    assert [c.result for c in fake.calls][-1] == "ThrottlingException"
    assert not fake.calls[-1].landed
    # AND the throttled beat used none of the token's plans: its next beat still meets the scripted fault
    fake._bucket.tokens = 1.0  # type: ignore[union-attr]
    with pytest.raises(ClientError) as scripted:
        fake.send_task_heartbeat(taskToken="t")
    assert _code(scripted) == "InternalFailure"


def test_a_bucketed_fake_has_an_endpoint_of_its_own_so_callback_kit_paces_it() -> None:
    # GIVEN two bucketed fakes and a plain one
    from callback_kit.task.ratelimit import UNPACED, limiter_for

    a, b = ScheduleFake(SCALE, bucket=(50.0, 50.0, 1.0)), ScheduleFake(SCALE, bucket=(50.0, 50.0, 1.0))
    # WHEN their limiters are looked up / THEN each has its own (a fresh process's), the plain fake none
    assert limiter_for(a) is not limiter_for(b)
    assert limiter_for(a) is not UNPACED
    assert limiter_for(ScheduleFake(SCALE)) is UNPACED


def test_durable_callbacks_answer_with_lambdas_codes() -> None:
    # GIVEN a durable callback that closes 1 schedule second after t0
    fake = ScheduleFake(SCALE)
    fake.open_task("Y2I=", close_at=1.0, close_code="TaskTimedOut")
    fake.send_durable_execution_callback_heartbeat(CallbackId="Y2I=")
    time.sleep(1.5 * SCALE)
    with pytest.raises(ClientError) as closed:
        fake.send_durable_execution_callback_success(CallbackId="Y2I=", Result=b"{}")
    with pytest.raises(ClientError) as unknown:
        fake.send_durable_execution_callback_success(CallbackId="bm9wZQ==", Result=b"{}")
    with pytest.raises(ClientError) as malformed:
        fake.send_durable_execution_callback_failure(CallbackId='"Y2I="', Error={"ErrorType": "E"})
    # THEN Lambda's codes, where Step Functions would say TaskTimedOut, InvalidToken, ValidationException
    assert fake.calls[0].landed
    assert (_code(closed), _code(unknown), _code(malformed)) == (
        "CallbackTimeoutException",
        "ResourceNotFoundException",
        "InvalidParameterValueException",
    )
    assert fake.calls[-1].error == "E"


def test_durable_records_come_from_a_stream_of_their_own() -> None:
    # GIVEN seeds' schedules with durable records / THEN without them each is the schedule the seed always meant
    from dataclasses import replace

    from tests.schedules.plan import _generate, _hostile

    durable = [seed for seed in range(300) if any(r.durable for r in generate(seed).records)]
    assert len(durable) > 10
    for seed in durable:
        plain = generate(seed)
        plain = replace(plain, records=tuple(replace(r, durable=False) for r in plain.records))
        assert plain == _hostile(_generate(seed))
