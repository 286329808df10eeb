"""The explorer's own tests: each checker fires on a deliberately broken handler or worker, and stays quiet on a
correct one. A checker that cannot fail proves nothing; one that fires on a correct handler is a bug here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from callback_kit.logs import fingerprint
from tests.schedules.checks import (
    STALL,
    Violation,
    ambiguous_records,
    check,
    check_in_time,
    check_no_double_work,
    check_no_token_leak,
    check_nothing_dropped,
    check_one_answer,
    check_workers_alive,
)
from tests.schedules.drivers import Trace, run_activity, run_lambda
from tests.schedules.plan import CallPlan, Driver, RecordPlan, Schedule

SCALE = 0.01
Handler = Callable[[Any, Any], Any]


def _schedule(driver: Driver = "sqs", *records: RecordPlan, **options: Any) -> Schedule:
    return Schedule(seed=1, driver=driver, records=records or (_record(),), **options)


def _record(**fields: Any) -> RecordPlan:
    return RecordPlan(**{"kind": "real", "behaviour": "return", "duration": 0.0, **fields})


def _token_of(event: Any, k: int = 0) -> str | None:
    import json

    token = json.loads(event["Records"][k]["body"]).get("TaskToken")
    return token if isinstance(token, str) else None


def _causes(violations: list[Violation]) -> set[tuple[int, str]]:
    return {(v.invariant, v.cause) for v in violations}


def _with(broken: Callable[[Any, dict[str, Any], Any, Any], Any]) -> Callable[..., Handler]:
    """A make_handler for run_lambda: ``broken(client, options, event, context)`` is the whole handler."""

    def make(fn: Callable[[Any], Any], options: dict[str, Any]) -> Handler:
        return lambda event, context: broken(options["client"], options, event, context)

    return make


def _correct(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
    """A minimal handler that keeps every invariant: answer each token once, with a timeout, or hand it back."""
    failures = []
    for k, record in enumerate(event["Records"]):
        token = _token_of(event, k)
        if token is None:
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        left = context.get_remaining_time_in_millis() / 1000 - options["deadline_margin"]
        try:
            client.with_timeout(max(0.0, left)).send_task_success(taskToken=token, output="{}")
        except Exception:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def test_a_correct_handler_breaks_no_invariant() -> None:
    # GIVEN a hand-written handler that answers once with a fitting timeout or hands back, on a batch with a
    # record without a token and a slow call
    slow = (CallPlan(0.5),)
    s = _schedule("sqs", _record(), _record(kind="missing"), _record(completions=slow), remaining=10.0, margin=2.0)
    # WHEN it runs through the explorer
    trace = run_lambda(s, SCALE, make_handler=_with(_correct))
    # THEN no checker fires
    assert check(trace) == []


def test_one_answer_fires_when_a_token_is_answered_twice() -> None:
    # GIVEN a handler that sends a second success after the first one was delivered
    def twice(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
        token = _token_of(event)
        client.send_task_success(taskToken=token, output="{}")
        with contextlib.suppress(Exception):
            client.send_task_success(taskToken=token, output="{}")
        return {"batchItemFailures": []}

    # WHEN it runs
    trace = run_lambda(_schedule(), SCALE, make_handler=_with(twice))
    # THEN invariant 1 reports the second call
    assert (1, "SendTaskSuccess after a delivered completion") in _causes(check_one_answer(trace))


def test_nothing_dropped_fires_on_an_acknowledged_unanswered_record() -> None:
    # GIVEN a handler that acknowledges everything and answers nothing, on a real, an invalid and a tokenless record
    s = _schedule("sqs", _record(), _record(kind="invalid"), _record(kind="missing"))

    def ack(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
        return {"batchItemFailures": []}

    # WHEN it runs
    causes = _causes(check_nothing_dropped(run_lambda(s, SCALE, make_handler=_with(ack))))
    # THEN invariant 2 names each of them
    assert causes == {
        (2, "acknowledged without any completion call"),
        (2, "InvalidToken acknowledged"),
        (2, "record without a token acknowledged"),
    }


def test_nothing_dropped_fires_when_fifo_stops_a_healthy_group() -> None:
    # GIVEN a FIFO batch in two groups and a handler that hands back everything after the first record's failure
    s = _schedule("fifo", _record(kind="missing", group="a"), _record(group="b"), _record(group="a"))

    def stop_all(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}

    # WHEN it runs
    causes = _causes(check_nothing_dropped(run_lambda(s, SCALE, make_handler=_with(stop_all))))
    # THEN the healthy group's record is reported, and the failing group's later record is not
    assert causes == {(2, "FIFO: a healthy group stopped by another group's failure")}


def test_nothing_dropped_fires_when_a_fifo_lane_sits_idle_until_the_deadline() -> None:
    # GIVEN a FIFO group of two records, and a handler that answers the first, then waits for the deadline guard's
    # time before handing the second back unrun (a lane that stalled)
    import callback_kit as ck

    s = _schedule("fifo", _record(group="a"), _record(group="a"), remaining=20.0, margin=2.0)

    def make(fn: Callable[[Any], Any], options: dict[str, Any]) -> Handler:
        def stalls(event: Any, context: Any) -> Any:
            first: Any = ck.process_event({**event, "Records": event["Records"][:1]}, context, fn, **options)
            while context.get_remaining_time_in_millis() / 1000 > options["deadline_margin"]:
                time.sleep(0.001)
            rest = [{"itemIdentifier": r["messageId"]} for r in event["Records"][1:]]
            return {"batchItemFailures": first["batchItemFailures"] + rest}

        return stalls

    # WHEN it runs
    causes = _causes(check_nothing_dropped(run_lambda(s, SCALE, make_handler=make)))
    # THEN the stall is reported, though a hand-back at the deadline is otherwise allowed
    assert causes == {(2, STALL)}


def test_a_fifo_lane_busy_until_the_deadline_is_no_stall() -> None:
    # GIVEN a FIFO group whose first record runs past the deadline guard's time
    s = _schedule("fifo", _record(group="a", duration=30.0), _record(group="a"), remaining=5.0, margin=2.0)
    # WHEN the library's handler runs it
    trace = run_lambda(s, SCALE)
    # THEN the second record is handed back unrun, and that is no stall
    assert 1 in trace.handed_back
    assert (2, STALL) not in _causes(check_nothing_dropped(trace))


def test_no_double_work_fires_on_answered_and_handed_back() -> None:
    # GIVEN a handler that answers the task and then hands the record back anyway
    def both(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
        client.send_task_success(taskToken=_token_of(event), output="{}")
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    # WHEN it runs
    causes = _causes(check_no_double_work(run_lambda(_schedule(), SCALE, make_handler=_with(both))))
    # THEN invariant 3 reports it
    assert causes == {(3, "handed back, and its completion landed before the return")}


def test_no_double_work_fires_on_a_completion_after_the_return() -> None:
    # GIVEN a handler that hands the record back and leaves a thread that answers it a moment later
    def late(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
        token = _token_of(event)
        threading.Timer(1.0 * SCALE, lambda: client.send_task_success(taskToken=token, output="{}")).start()
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    # WHEN it runs (the explorer keeps recording after the return)
    causes = _causes(check_no_double_work(run_lambda(_schedule(), SCALE, make_handler=_with(late))))
    # THEN both halves of invariant 3 fire
    assert causes == {
        (3, "SendTaskSuccess started after the return"),
        (3, "handed back, and its completion landed after the return"),
    }


def test_an_ambiguous_landing_is_counted_not_reported() -> None:
    # GIVEN a success that lands and then loses its response, and a handler that hands the record back on error
    s = _schedule("sqs", _record(completions=(CallPlan(0.0, "InternalFailure", after=True),)))
    # WHEN the correct handler runs it
    trace = run_lambda(s, SCALE, make_handler=_with(_correct))
    # THEN it is ambiguous, not a violation
    assert check(trace) == []
    assert ambiguous_records(trace) == 1


def test_in_time_fires_on_a_late_return_and_on_a_call_without_a_timeout() -> None:
    # GIVEN a handler that sleeps into the margin, then calls without a timeout and returns after the deadline
    def slow(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
        time.sleep(9 * SCALE)
        client.send_task_success(taskToken=_token_of(event), output="{}")
        time.sleep(3 * SCALE)
        return {"batchItemFailures": []}

    # WHEN it runs with 10 s left and a 2 s margin
    trace = run_lambda(_schedule(remaining=10.0, margin=2.0), SCALE, make_handler=_with(slow))
    # THEN both parts of invariant 4 fire
    assert _causes(check_in_time(trace)) == {
        (4, "handler returned after the deadline"),
        (4, "completion near the deadline without a timeout"),
    }


def test_in_time_fires_on_a_timeout_that_ends_after_the_deadline() -> None:
    # GIVEN a handler that calls in the margin with a timeout longer than the time left
    def long_timeout(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
        time.sleep(9 * SCALE)
        client.with_timeout(5 * SCALE).send_task_success(taskToken=_token_of(event), output="{}")
        return {"batchItemFailures": []}

    # WHEN it runs
    trace = run_lambda(_schedule(remaining=10.0, margin=2.0), SCALE, make_handler=_with(long_timeout))
    # THEN invariant 4 reports the timeout
    assert _causes(check_in_time(trace)) == {(4, "completion timeout ends after the deadline")}


def test_token_leak_fires_on_a_raw_token_and_not_on_a_fingerprint() -> None:
    # GIVEN handlers that log the token, raw or as a fingerprint, at DEBUG on some logger
    def logs(raw: bool) -> Callable[[Any, dict[str, Any], Any, Any], Any]:
        def handler(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
            token = _token_of(event) or ""
            logging.getLogger("some.library").debug("calling with %s", token if raw else fingerprint(token))
            return _correct(client, options, event, context)

        return handler

    # WHEN each runs
    leaked = check_no_token_leak(run_lambda(_schedule(), SCALE, make_handler=_with(logs(raw=True))))
    clean = check_no_token_leak(run_lambda(_schedule(), SCALE, make_handler=_with(logs(raw=False))))
    # THEN only the raw token is reported, and the report itself shows the fingerprint
    assert [v.cause for v in leaked] == ["raw token in a log line"]
    assert "tok-" in leaked[0].detail
    assert clean == []


@pytest.fixture
def clean_activity_trace() -> Trace:
    # Plain tasks, no faults, no time limit: nothing a correct worker can get wrong.
    records = tuple(_record(completions=(CallPlan(0.0),)) for _ in range(3))
    s = _schedule("activity", *records, concurrency=2, remaining=1.0)
    return run_activity(s, SCALE)


def test_workers_alive_is_quiet_on_a_clean_run(clean_activity_trace: Trace) -> None:
    # GIVEN / WHEN a clean activity schedule / THEN every slot polls and the stats match
    assert check(clean_activity_trace) == []
    assert clean_activity_trace.slots_polling == 2


def test_workers_alive_fires_on_wrong_stats_and_a_dead_slot(clean_activity_trace: Trace) -> None:
    # GIVEN the clean trace, with the worker's stats off by one and one slot no longer polling
    trace = clean_activity_trace
    trace.stats = dataclasses.replace(trace.stats, succeeded=trace.stats.succeeded - 1, closed=1)
    trace.slots_polling = 1
    # WHEN invariant 5 is checked
    causes = _causes(check_workers_alive(trace))
    # THEN each difference is reported
    assert causes == {
        (5, "a slot stopped polling"),
        (5, "stats.succeeded differs from what the fake saw"),
        (5, "stats.closed differs from what the fake saw"),
    }


def test_a_real_client_schedule_reaches_the_fake_through_the_local_endpoint() -> None:
    # GIVEN a schedule on callback-kit's own botocore client, with botocore's DEBUG logs captured
    s = _schedule("sqs", _record(), real_client=True, remaining=1000.0)  # real HTTP time does not scale
    # WHEN it runs
    trace = run_lambda(s, SCALE)
    # THEN the success went over HTTP to the fake and landed, and botocore logged the request (redacted)
    assert [(c.api, c.landed) for c in trace.fake.calls] == [("SendTaskSuccess", True)]
    assert any("SendTaskSuccess" in line for line in trace.logs)
    assert check(trace) == []


def test_a_closed_verdict_the_worker_could_not_hear_leaves_its_count_open() -> None:
    from tests.schedules.checks import _closed_verdict_unheard
    from tests.schedules.fake import CallRecord

    beat = CallRecord("SendTaskHeartbeat", "t", start=1.0, thread="s", result="TaskTimedOut")
    kms = CallRecord("SendTaskSuccess", "t", start=1.1, thread="w", result="KmsAccessDeniedException")
    closed = CallRecord("SendTaskSuccess", "t", start=1.1, thread="w", result="TaskTimedOut")
    # GIVEN a heartbeat answered "closed", then a completion that met a fault before any task check: either count
    assert _closed_verdict_unheard([beat, kms])
    # AND a completion that was itself answered "closed", or none at all, leaves nothing open: the worker must say so
    assert not _closed_verdict_unheard([beat, closed])
    assert not _closed_verdict_unheard([beat])


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("kind", ["hooks", "retries", "verify"])
@pytest.mark.parametrize("driver", ["sqs", "activity"])
def test_a_users_client_schedule_goes_through_that_client(kind: str, driver: Driver) -> None:
    # GIVEN a schedule on a botocore client the user built (hooks, retries or verify=False over HTTPS)
    s = _schedule(driver, _record(), user_client=kind, remaining=1000.0)  # real HTTP time does not scale
    # WHEN it runs
    trace = run_activity(s, SCALE) if driver == "activity" else run_lambda(s, SCALE)
    # THEN the success went over HTTP through that client (its hooks marked every request) and landed
    assert [(c.api, c.landed) for c in trace.fake.calls if c.completion] == [("SendTaskSuccess", True)]
    assert trace.foreign_calls == 0
    assert check(trace) == []


@pytest.mark.parametrize("kind", ["hooks", "verify"])
def test_a_call_that_goes_around_the_users_client_is_reported(kind: str) -> None:
    # GIVEN a handler that answers on a client of its own making, built like the user's but without its hooks or
    # its verify= (what a copy of the user's client did)
    import botocore.session

    import callback_kit as ck

    def around(client: Any, options: dict[str, Any], event: Any, context: Any) -> Any:
        copy = botocore.session.get_session().create_client(
            "stepfunctions",
            region_name="us-east-1",
            endpoint_url=client.meta.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # a dummy
        )
        return ck.process_event(event, context, lambda payload: {"ok": True}, **{**options, "client": copy})

    s = _schedule("sqs", _record(), user_client=kind, remaining=1000.0)
    # WHEN it runs
    trace = run_lambda(s, SCALE, make_handler=_with(around))
    # THEN invariant 4 says the user's client was bypassed (its hooks never saw the call, or its verify= was lost)
    expected = {
        "hooks": (4, "a call bypassed the user's client"),
        "verify": (4, "a call lost the user's client's verify="),
    }[kind]
    assert expected in _causes(check(trace))
