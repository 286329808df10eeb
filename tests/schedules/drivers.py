"""Run a schedule: the Lambda handler for one invocation of any source, or an activity worker, and record a trace.

After the handler returns, the sandbox "freezes" in name only: everything the invocation left running (pool
threads, retry loops, heartbeats, functions past their deadline) keeps running here, and the fake keeps recording,
until every user function has ended and no call has reached the fake for a while. A real sandbox thaws at the
next invoke and lets the same code run on, so whatever reaches the fake after the return is what would reach AWS.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import callback_kit as ck
from callback_kit import testing
from callback_kit.activity import FINAL_DELIVERY_SECONDS, PollBackoff
from callback_kit.task.completion import RetryPolicy
from callback_kit.testing import FakeLambdaContext, eventbridge_event, sqs_event
from tests.schedules import endpoint
from tests.schedules.behaviours import Runs, dispatcher
from tests.schedules.fake import ScheduleFake
from tests.schedules.logcapture import captured_logs
from tests.schedules.plan import Schedule

#: Builds a Lambda handler ``handler(event, context)`` from the user function and callback_handler's options.
MakeHandler: TypeAlias = Callable[[Callable[[Any], Any], dict[str, Any]], Callable[[Any, Any], Any]]
ACTIVITY_ARN = "arn:aws:states:us-east-1:123456789012:activity:explorer"
#: Schedule seconds without a call, beyond the longest pause the library takes, that end the freeze.
QUIET = 1.5
#: Real seconds of shutdown grace at least, for an activity worker on a real botocore client.
REAL_CLIENT_GRACE = 0.5
#: Real seconds added to every wait that only ends early when all is well (a loaded machine is slow, not wrong).
LOAD_ALLOWANCE = 1.0
#: Real seconds more that a real-client run may take: its HTTP round trips do not shrink with the scale.
REAL_CLIENT_EXTRA = 5.0
#: The fake's long-poll hold for activities, in schedule seconds.
POLL_HOLD = 1.0


@dataclass
class Trace:
    """What happened in one schedule: the ground truth the checkers read."""

    schedule: Schedule
    scale: float
    fake: ScheduleFake
    tokens: list[str | None]
    runs: Runs
    t_start: float
    deadline: float | None = None
    t_return: float | None = None
    handed_back: set[int] = field(default_factory=set)
    raised: str | None = None
    response: Any = None
    logs: list[str] = field(default_factory=list)
    #: Activity worker only.
    stats: Any = None
    slots_polling: int | None = None
    slot_deaths: int = 0
    stopped_early: bool = False
    finished: bool = True
    #: Calls for this schedule that reached the endpoint without passing the user's client's hooks.
    foreign_calls: int = 0
    #: The endpoint (with this schedule's path) that the schedule's botocore client calls, when it has one.
    endpoint_url: str | None = None


def _token(seed: int, i: int) -> str:
    # Long and unmistakable, so that any slice of it found in a log is a leak; unique across runs of the same seed.
    return f"AQB{seed:x}x{i}x" + uuid.uuid4().hex * 8


def _tokens(s: Schedule) -> list[str | None]:
    tokens: list[str | None] = []
    for i, r in enumerate(s.records):
        if r.kind == "real":
            tokens.append(_token(s.seed, i))
        elif r.kind == "invalid":
            tokens.append('"' + _token(s.seed, i) + '"')  # JSON.stringify'd once too often: not a token
        else:
            tokens.append(None)
    for i, r in enumerate(s.records):
        if r.kind == "duplicate":
            j = r.dup_of
            while j is not None and s.records[j].kind == "duplicate":
                j = s.records[j].dup_of
            tokens[i] = tokens[j] if j is not None else None
    return tokens


def _open(fake: ScheduleFake, s: Schedule, tokens: list[str | None]) -> None:
    for r, token in zip(s.records, tokens, strict=True):
        if r.kind == "real" and token is not None:
            # A durable callback's close code is Step Functions' here; the fake answers Lambda's (fake.code_for).
            fake.open_task(
                token, close_at=r.close_at, close_code=r.close_code, completions=r.completions, heartbeats=r.heartbeats
            )


#: How deep a ``deep`` message nests: past callback-kit's bound, and within what json.dumps can write.
DEEP = 600


def _message(i: int, token: str | None, shape: str = "plain", *, durable: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"i": i, "order": {"id": f"o-{i}", "total": 12}}
    key = "callbackId" if durable else "TaskToken"
    if token is not None:
        message[key] = token
    return _shaped(message, token, shape, key)


def _shaped(message: dict[str, Any], token: str | None, shape: str, key: str = "TaskToken") -> dict[str, Any]:
    if shape == "huge":
        message["blob"] = "x" * 300_000
    elif shape == "deep":
        nested: dict[str, Any] = {key: token} if token is not None else {}
        for _ in range(DEEP):
            nested = {"a": nested}
        message["nested"] = nested
    return message


def _event(s: Schedule, messages: list[dict[str, Any]]) -> Any:
    if s.driver == "sqs":
        return sqs_event(*messages)
    if s.driver == "fifo":
        return sqs_event(*messages, fifo=True, group_id=lambda k: s.records[k].group or "g0")
    if s.driver == "eventbridge":
        return eventbridge_event(messages[0])
    if s.driver == "sns":
        builder = getattr(testing, "sns_event", None)
        if builder is not None:
            return builder(messages[0])
        return {
            "Records": [
                {
                    "EventSource": "aws:sns",
                    "EventVersion": "1.0",
                    "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:callbacks:1",
                    "Sns": {"Type": "Notification", "MessageId": str(uuid.uuid4()), "Message": json.dumps(m)},
                }
                for m in messages
            ]
        }
    return messages[0]


def retry_policy(s: Schedule, scale: float) -> RetryPolicy:
    """The schedule's completion retry policy in real seconds (jitter seeded, sleeps real)."""
    rng = random.Random(s.seed)
    return RetryPolicy(
        max_attempts=s.max_attempts, base_delay=s.base_delay * scale, max_delay=s.max_delay * scale, random=rng.random
    )


def _settle(fake: ScheduleFake, runs: Runs, s: Schedule, scale: float, cap: float) -> bool:
    """The freeze: wait until no function runs and no call reaches the fake for a quiet spell; False at ``cap``."""
    # Longer than any pause the library takes between two calls (a retry's backoff, a heartbeat interval).
    quiet_for = (max(s.max_delay, s.heartbeat_interval or 0.0) + QUIET) * scale
    give_up = time.monotonic() + cap
    last = (len(fake.calls), time.monotonic())
    while time.monotonic() < give_up:
        time.sleep(min(quiet_for / 4, 0.01))
        now = time.monotonic()
        count = len(fake.calls)
        if count != last[0] or runs.active or not fake.quiet:
            last = (count, now)
        elif now - last[1] >= quiet_for:
            return True
    return False


def _longest(s: Schedule) -> float:
    return max((r.duration for r in s.records), default=0.0)


def run_lambda(s: Schedule, scale: float, *, make_handler: MakeHandler | None = None) -> Trace:
    """Invoke the handler once with the schedule's event.

    Args:
        make_handler: builds the handler from the options and the function instead of ``ck.callback_handler``
            (the checkers' own tests pass deliberately broken handlers).
    """
    fake = ScheduleFake(scale, bucket=s.bucket)
    tokens = _tokens(s)
    _open(fake, s, tokens)
    runs = Runs()
    fn = dispatcher(s.records, scale, runs)
    event = _event(
        s,
        [_message(i, t, r.shape, durable=r.durable) for i, (t, r) in enumerate(zip(tokens, s.records, strict=True))],
    )
    options: dict[str, Any] = {
        "heartbeat_interval": (s.heartbeat_interval or 0) * scale,
        "deadline_margin": s.margin * scale,
        "max_concurrency": s.max_concurrency,
        "retry": retry_policy(s, scale),
    }
    trace = Trace(s, scale, fake, tokens, runs, t_start=time.monotonic())
    with _clients(s, fake, tokens, trace) as built, captured_logs() as lines:
        options["client"] = built
        if any(r.durable for r in s.records):
            options["lambda_client"] = fake  # it serves the Lambda durable callback API too (never over HTTP)
        handler = (make_handler or (_process_event if s.seed % 2 else _callback_handler))(fn, options)
        trace.t_start = time.monotonic()
        trace.deadline = trace.t_start + s.remaining * scale
        context = FakeLambdaContext(remaining_ms=int(s.remaining * scale * 1000))
        try:
            trace.response = handler(event, context)
        except BaseException as exc:
            trace.raised = f"{type(exc).__name__}"
        trace.t_return = time.monotonic()
        cap = (s.remaining + _longest(s) + 10 * s.max_delay * s.max_attempts + 20) * scale + LOAD_ALLOWANCE
        cap += REAL_CLIENT_EXTRA if s.over_http else 0.0
        trace.finished = _settle(fake, runs, s, scale, cap)
    trace.logs = lines
    trace.handed_back = _handed_back(s, event, trace)
    return trace


@contextlib.contextmanager
def _clients(s: Schedule, fake: ScheduleFake, tokens: list[str | None], trace: Trace) -> Iterator[Any]:
    """The client the code under test gets: the fake, or a botocore client in front of it (callback-kit's own, or
    one the user built)."""
    if not s.over_http:
        yield fake
        return
    with endpoint.serving(fake, tokens, activity=s.driver == "activity", user=s.user_client) as client:
        trace.endpoint_url = client.meta.endpoint_url
        try:
            yield client
        finally:
            trace.foreign_calls = endpoint.foreign_calls(fake)


def _callback_handler(fn: Callable[[Any], Any], options: dict[str, Any]) -> Callable[[Any, Any], Any]:
    return ck.callback_handler(**options)(fn)


def _process_event(fn: Callable[[Any], Any], options: dict[str, Any]) -> Callable[[Any, Any], Any]:
    return lambda event, context: ck.process_event(event, context, fn, **options)


def _handed_back(s: Schedule, event: Any, trace: Trace) -> set[int]:
    everything = set(range(len(s.records)))
    if trace.raised is not None:
        return everything
    if s.driver in ("sqs", "fifo"):
        failures = (trace.response or {}).get("batchItemFailures", [])
        ids = {f.get("itemIdentifier") for f in failures}
        return {i for i, r in enumerate(event["Records"]) if r["messageId"] in ids}
    return set()


def run_activity(s: Schedule, scale: float) -> Trace:
    """Give the schedule's tasks to an activity worker (its slots, or ``run_one``), then stop it."""
    fake = ScheduleFake(scale, poll_hold=POLL_HOLD, poll_faults=s.poll_faults, bucket=s.bucket)
    tokens = _tokens(s)
    _open(fake, s, tokens)
    for i, token in enumerate(tokens):
        if token is not None:
            message: dict[str, Any] = {"i": i, "order": {"id": f"o-{i}"}}
            if s.token_in_input:
                message["context"] = {"Task": {"Token": token}}
            fake.add_activity_task(token, json.dumps(_shaped(message, token, s.records[i].shape)))
    runs = Runs()
    trace = Trace(s, scale, fake, tokens, runs, t_start=time.monotonic())
    work = sum(r.duration for r in s.records) + len(s.records) * s.max_delay * s.max_attempts
    cap = (work + _quota_time(s) + s.remaining + 20 * POLL_HOLD + 20) * scale + LOAD_ALLOWANCE
    cap += REAL_CLIENT_EXTRA if s.over_http else 0.0
    with _clients(s, fake, tokens, trace) as client, captured_logs() as lines:
        worker = _worker(s, scale, dispatcher(s.records, scale, runs), client)
        trace.t_start = time.monotonic()
        if s.run_one:
            _drive_run_one(worker, fake, trace, cap)
        else:
            _drive_slots(worker, fake, trace, cap)
        # A poll still open when wait() returned (one the user's client retries after a throttle, in real time)
        # can still be handed a task, which its slot answers and counts then: read the counters after that.
        drained_by = time.monotonic() + cap
        while (worker.stats.polling or worker.stats.running) and time.monotonic() < drained_by:
            time.sleep(0.01)
        trace.finished = _settle(fake, runs, s, scale, cap) and trace.finished
        trace.stats = worker.stats
    trace.logs = lines
    return trace


def _quota_time(s: Schedule) -> float:
    """Schedule seconds the bucket's refill takes to let every call of the schedule through, eight times over (a limiter
    that was throttled paces below the refill rate for a while): an activity's answers have no deadline to cut
    their wait short, so its run lasts as long as the quota says."""
    if s.bucket is None:
        return 0.0
    burst, refill, fill = s.bucket
    beats = sum(r.duration / s.heartbeat_interval for r in s.records) if s.heartbeat_interval else 0.0
    calls = len(s.records) * (2 + s.max_attempts) + beats
    return 8 * max(0.0, calls - burst * fill) / refill


def _worker(s: Schedule, scale: float, fn: Callable[[Any], Any], client: Any) -> Any:
    rng = random.Random(s.seed ^ 0x5EED)
    return ck.ActivityWorker(
        ACTIVITY_ARN,
        fn,
        concurrency=s.concurrency,
        heartbeat_interval=(s.heartbeat_interval or 0) * scale,
        client=client,
        max_task_seconds=None if s.max_task_seconds is None else s.max_task_seconds * scale,
        # A real client's round trips do not shrink with the scale: its grace must outlast one in real time.
        shutdown_grace_seconds=max(s.grace * scale, REAL_CLIENT_GRACE) if s.over_http else s.grace * scale,
        retry=retry_policy(s, scale),
        backoff=PollBackoff(
            base_delay=0.2 * scale, max_delay=1.0 * scale, min_poll_seconds=0.2 * scale, rand=rng.random
        ),
        tick=0.1 * scale,
    )


def _drive_run_one(worker: Any, fake: ScheduleFake, trace: Trace, cap: float) -> None:
    """``run_one`` from ``concurrency`` threads of our own; a BaseException that escapes it is a slot death."""
    deaths: list[str] = []

    def slot() -> None:
        while fake.queued:
            response: dict[str, Any] = {}
            with contextlib.suppress(Exception):  # a throttled poll of our own: poll again
                response = fake.get_activity_task(activityArn=ACTIVITY_ARN)
            if "taskToken" not in response:
                continue
            try:
                worker.run_one(response)
            except BaseException as exc:
                deaths.append(type(exc).__name__)
                return

    threads = [threading.Thread(target=slot, daemon=True) for _ in range(trace.schedule.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(cap)
    trace.t_return = time.monotonic()
    trace.slot_deaths = len(deaths)
    trace.finished = not any(t.is_alive() for t in threads)


def _drive_slots(worker: Any, fake: ScheduleFake, trace: Trace, cap: float) -> None:
    s, scale = trace.schedule, trace.scale
    worker.start()
    give_up = time.monotonic() + cap
    stop_at = None if s.stop_at is None else trace.t_start + s.stop_at * scale
    stall = (3 * POLL_HOLD + 3) * scale
    idle_since = time.monotonic()
    while time.monotonic() < give_up:
        now = time.monotonic()
        if stop_at is not None and now >= stop_at:
            trace.stopped_early = True
            break
        stats = worker.stats
        idle = not trace.runs.active and fake.quiet and not stats.running and stats.started == len(fake.delivered)
        if idle and not fake.queued:
            break
        if not (idle and fake.open_polls == 0):
            idle_since = now
        elif now - idle_since > stall:
            break  # work queued, yet no slot polls or runs: the slots are dead (the checkers will say so)
        time.sleep(0.1 * scale)
    if not trace.stopped_early and not s.over_http:
        # Every slot that is alive polls again within a hold and a pause: count the slots seen polling from now.
        done = time.monotonic()
        settle = done + (3 * POLL_HOLD + 2) * scale + LOAD_ALLOWANCE
        while time.monotonic() < settle:
            trace.slots_polling = len(
                {c.thread for c in list(fake.calls) if c.api == "GetActivityTask" and c.start > done}
            )
            if trace.slots_polling >= s.concurrency:
                break
            time.sleep(0.05 * scale)
    worker.stop()
    # The answers of a stopping worker are bounded by the grace plus FINAL_DELIVERY_SECONDS, in real time.
    trace.finished = bool(worker.wait(cap + FINAL_DELIVERY_SECONDS))
    trace.t_return = time.monotonic()


def run(s: Schedule, scale: float) -> Trace:
    """Run one schedule with the driver it names."""
    if s.driver == "activity":
        return run_activity(s, scale)
    return run_lambda(s, scale)
