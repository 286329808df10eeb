"""Schedules: everything one run of the explorer does, drawn from a seed, so that a seed replays it exactly.

Times in a schedule are *schedule seconds*. A run maps them to real time with a scale factor (one schedule
second is ``scale`` real seconds, 10 ms by default), so that a Lambda with 15 s left, a 5 s completion call and
a 2 s deadline margin keep their proportions and yet run in milliseconds.

Example:
    >>> a, b = generate(7), generate(7)
    >>> a == b, a.seed
    (True, 7)
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from callback_kit.sources import SOURCES

Driver: TypeAlias = Literal["sqs", "fifo", "eventbridge", "direct", "sns", "activity"]
#: Every driver, in the order seeds draw them. SNS is drawn even where the library does not read SNS events yet
#: (``callback_kit.sources.SOURCES``); it then runs as EventBridge, the other asynchronously invoked single-record
#: source, so that a seed names the same schedule before and after SNS support.
DRIVERS: tuple[Driver, ...] = ("sqs", "fifo", "eventbridge", "direct", "sns", "activity")
SNS_SUPPORTED = "sns" in SOURCES

#: What a user function does (see ``behaviours.py``).
BEHAVIOURS: dict[str, float] = {
    "return": 30,
    "raise": 8,
    "task_failed": 4,
    "str_raises": 3,
    "exception_group": 3,
    "huge_message": 2,
    "cancelled_error": 2,
    "system_exit": 2,
    "keyboard_interrupt": 1,
    "long_ignore": 4,
    "long_honour": 4,
    "async_return": 4,
    "async_raise": 2,
    "huge_output": 2,
    "unserialisable": 2,
    "hand_off": 2,
    "manual_beat": 3,
}
#: Faults a call can meet before it reaches Step Functions (it does not land).
FAULTS_BEFORE: tuple[str, ...] = (
    "ThrottlingException",
    "InternalFailure",
    "ServiceUnavailable",
    "KmsThrottlingException",
    "KmsAccessDeniedException",
    "EndpointConnectionError",
    "ConnectionClosedError",
    "ReadTimeoutError",
)
#: Faults that can hit a call after Step Functions applied it (the response is lost or garbled).
FAULTS_AFTER: tuple[str, ...] = ("InternalFailure", "ServiceUnavailable", "ConnectionClosedError", "ReadTimeoutError")
#: How many calls of each kind per token are scripted; later ones are fast and clean.
SCRIPTED_CALLS = 8
#: botocore clients a user may pass as ``client=`` (see ``endpoint.py``): with event hooks (``before-call``), with
#: botocore's retries on, or with ``verify=False`` against a self-signed HTTPS endpoint.
USER_CLIENTS: tuple[str, ...] = ("hooks", "retries", "verify")
#: The share of schedules run on a user's botocore client (drawn apart from the rest, so that adding them
#: changed no other schedule of any seed).
USER_CLIENT_SHARE = 0.03
#: The quota matrix's buckets (bench/quotamatrix.py): burst, and refill per schedule second. A fleet shares the
#: account's bucket, so a process sees a slice of it (SLICES), and may find it full, half drained or dry (FILLS).
BURSTS: tuple[int, ...] = (50, 100, 1500, 3000)
REFILLS: tuple[int, ...] = (50, 200, 500)
SLICES: tuple[float, ...] = (1.0, 0.1, 0.01)
FILLS: tuple[float, ...] = (0.0, 0.5, 1.0)
#: The share of schedules whose Step Functions enforces a bucket.
BUCKETED = 0.3


@dataclass(frozen=True)
class CallPlan:
    """What happens to the n-th call of one kind (completion or heartbeat) for one token."""

    latency: float
    fault: str | None = None
    #: The fault hits after the call landed (applied at Step Functions) rather than before.
    after: bool = False
    #: When the caller's own timeout cuts the call short, whether it still lands (at start + latency).
    lands_late: bool = False


@dataclass(frozen=True)
class RecordPlan:
    """One record (a message, an event, an activity task) and what its task and function do."""

    #: ``real`` (an open task), ``missing`` (no token in the message), ``invalid`` (a string Step Functions never
    #: issued), ``duplicate`` (the same token as record ``dup_of``).
    kind: Literal["real", "missing", "invalid", "duplicate"]
    behaviour: str
    #: Schedule seconds of work (the user function's run time, or how long it keeps going when long).
    duration: float
    group: str | None = None
    dup_of: int | None = None
    #: Schedule time (from the start) at which Step Functions closes the task itself, and how it answers then.
    close_at: float | None = None
    close_code: str = "TaskTimedOut"
    completions: tuple[CallPlan, ...] = ()
    heartbeats: tuple[CallPlan, ...] = ()
    #: The message itself: ``plain``; ``deep``, holding its token again under objects nested past any reader's
    #: depth (its SQS or SNS text cannot be read: handed back; a decoded event or an activity input with a
    #: readable token: answered MalformedMessage); ``huge``, carrying a 300 kB field.
    shape: Literal["plain", "deep", "huge"] = "plain"
    #: A Lambda durable function's callback (its id under ``callbackId``, answered through the Lambda API) rather
    #: than a Step Functions task. Its closed answer is ``CallbackTimeoutException``.
    durable: bool = False


@dataclass(frozen=True)
class Schedule:
    """One invocation of the Lambda handler, or one activity worker's life, and everything around it."""

    seed: int
    driver: Driver
    records: tuple[RecordPlan, ...]
    #: The Lambda's remaining time at the invocation (schedule seconds).
    remaining: float = 10.0
    margin: float = 2.0
    heartbeat_interval: float | None = None
    max_concurrency: int = 10
    max_attempts: int = 4
    base_delay: float = 0.1
    max_delay: float = 1.0
    #: The activity worker: slots, its time limit, its grace, and whether it is driven by ``run_one`` instead.
    concurrency: int = 1
    max_task_seconds: float | None = None
    stop_at: float | None = None
    grace: float = 2.0
    run_one: bool = False
    poll_faults: int = 0
    #: Use a real botocore client (built by callback-kit) against a local endpoint instead of the fake.
    real_client: bool = False
    #: Or a botocore client the user built and passed as ``client=`` (one of USER_CLIENTS), against the endpoint.
    user_client: str | None = None
    #: Activity inputs carry the token too, at ``context.Task.Token`` (a state machine passing ``"context.$": "$$"``).
    token_in_input: bool = False
    #: This process's slice of the account's token bucket for SendTask* calls: (burst, refill per schedule
    #: second, how full at the start).
    bucket: tuple[float, float, float] | None = None
    tags: tuple[str, ...] = field(default=())

    @property
    def over_http(self) -> bool:
        """Whether calls go through a real botocore client and the local endpoint (timing does not scale)."""
        return self.real_client or self.user_client is not None

    def describe(self) -> str:
        """A one-line summary for a violation report."""
        kinds: dict[str, int] = {}
        for r in self.records:
            kinds[r.behaviour] = kinds.get(r.behaviour, 0) + 1
        faults = sum(1 for r in self.records for c in (*r.completions, *r.heartbeats) if c.fault)
        closes = sum(1 for r in self.records if r.close_at is not None)
        parts = [
            f"{self.driver} x{len(self.records)}",
            f"remaining={self.remaining:g}s margin={self.margin:g}s",
            f"heartbeat={self.heartbeat_interval or 0:g}s",
            f"retry={self.max_attempts}x[{self.base_delay:g}..{self.max_delay:g}]s",
            f"faults={faults} closed_mid_run={closes}",
            "functions=" + ",".join(f"{k}:{v}" for k, v in sorted(kinds.items())),
        ]
        odd = [r.kind for r in self.records if r.kind != "real"] + [r.shape for r in self.records if r.shape != "plain"]
        if odd:
            parts.append("records=" + ",".join(sorted(set(odd))))
        twins = [
            i for i, r in enumerate(self.records) if r.dup_of is not None and r.group != self.records[r.dup_of].group
        ]
        if twins:
            parts.append(f"twins across groups={len(twins)}")
        if self.token_in_input:
            parts.append("token in the input")
        durable = sum(1 for r in self.records if r.durable)
        if durable:
            parts.append(f"durable callbacks={durable}")
        if self.driver == "activity":
            parts.append(
                f"slots={self.concurrency} max_task={self.max_task_seconds} stop_at={self.stop_at} "
                f"run_one={self.run_one}"
            )
        if self.real_client:
            parts.append("real botocore client")
        if self.user_client:
            parts.append(f"user's botocore client ({self.user_client})")
        if self.bucket is not None:
            parts.append(f"bucket={self.bucket[0]:g}+{self.bucket[1]:g}/s {self.bucket[2]:.0%} full")
        return "; ".join(parts)


def _call_plan(rng: random.Random, faulty: float) -> CallPlan:
    r = rng.random()
    latency = rng.uniform(0, 0.1) if r < 0.6 else rng.uniform(0, 1.0) if r < 0.9 else rng.uniform(1.0, 5.0)
    if rng.random() >= faulty:
        return CallPlan(latency)
    if rng.random() < 0.3:
        return CallPlan(latency, rng.choice(FAULTS_AFTER), after=True)
    return CallPlan(latency, rng.choice(FAULTS_BEFORE), lands_late=rng.random() < 0.5)


def _behaviour(rng: random.Random) -> str:
    names = list(BEHAVIOURS)
    return rng.choices(names, weights=[BEHAVIOURS[n] for n in names])[0]


def _record(rng: random.Random, span: float, group: str | None, kind_weights: tuple[float, float, float]) -> RecordPlan:
    behaviour = _behaviour(rng)
    long = behaviour.startswith("long")
    duration = (
        rng.uniform(span * 0.5, span * 1.6) if long else rng.choice((0.0, rng.uniform(0, 0.5), rng.uniform(0, 3)))
    )
    faulty = rng.choice((0.0, 0.0, 0.15, 0.4, 0.8))
    kind = rng.choices(("real", "missing", "invalid"), weights=kind_weights)[0]
    closed = rng.random() < 0.15
    return RecordPlan(
        kind=kind,  # type: ignore[arg-type]
        behaviour=behaviour,
        duration=round(duration, 3),
        group=group,
        close_at=round(rng.uniform(0, span * 1.2), 3) if closed else None,
        close_code=rng.choice(("TaskTimedOut", "TaskTimedOut", "TaskDoesNotExist")),
        completions=tuple(_call_plan(rng, faulty) for _ in range(SCRIPTED_CALLS)),
        heartbeats=tuple(_call_plan(rng, faulty) for _ in range(SCRIPTED_CALLS)),
    )


def _user_client(seed: int) -> str | None:
    rng = random.Random(f"user-client-{seed}")  # its own stream: the schedule's other draws stay as they were
    return rng.choice(USER_CLIENTS) if rng.random() < USER_CLIENT_SHARE else None


def _batch_size(rng: random.Random) -> int:
    r = rng.random()
    return rng.randint(1, 3) if r < 0.5 else rng.randint(4, 12) if r < 0.9 else rng.randint(13, 100)


#: Functions whose exception fights being read (see ``behaviours.py``), drawn by :func:`_hostile` only.
HOSTILE_BEHAVIOURS: tuple[str, ...] = ("task_failed_object", "members_raise", "shared_groups")


def _bucket(seed: int, least_burst: float = 0.0) -> tuple[float, float, float] | None:
    """The schedule's slice of the account's bucket, if it draws one.

    A slice whose burst is under one call admits none: the account is saturated by others. The Lambda's deadline
    bounds how long its answers try; an activity's answers have no deadline, only their throttled-attempts budget
    (unit-tested on injected time), which would take real minutes here, so its slices admit one call at least.
    """
    # A generator of its own, so that drawing a bucket changes none of the schedule's other draws.
    rng = random.Random(seed ^ 0xB0C4E7)
    if rng.random() >= BUCKETED:
        return None
    share = rng.choice(SLICES)
    return max(least_burst, rng.choice(BURSTS) * share), rng.choice(REFILLS) * share, rng.choice(FILLS)


def generate(seed: int, *, driver: Driver | None = None) -> Schedule:
    """The schedule of ``seed`` (the same seed always gives the same schedule)."""
    return _durable(_hostile(_generate(seed, driver=driver)))


def _hostile(s: Schedule) -> Schedule:
    """Add hostile input to some schedules: deep and huge messages, FIFO twins across groups, hostile exceptions.

    Drawn from a generator of its own, so that every other draw of a seed, and what older seeds mean, stay as
    they were.
    """
    rng = random.Random(f"hostile-{s.seed}")
    records = list(s.records)
    if rng.random() < 0.15:
        for i, r in enumerate(records):
            if rng.random() < 0.3:
                records[i] = replace(r, shape=rng.choice(("deep", "huge")))
    if rng.random() < 0.05:
        for i in range(len(records)):
            if rng.random() < 0.5:
                records[i] = replace(records[i], behaviour=rng.choice(HOSTILE_BEHAVIOURS))
    if s.driver == "fifo" and len(records) > 1 and rng.random() < 0.25:
        # The same token in two message groups: a record repeats an earlier one's token under another group.
        src = rng.randrange(len(records) - 1)
        dst = rng.randrange(src + 1, len(records))
        if records[src].kind == "real":
            other = rng.choice([g for g in ("g0", "g1", "g2", "g3") if g != records[src].group])
            records[dst] = replace(records[dst], kind="duplicate", dup_of=src, group=other)
    token_in_input = s.driver == "activity" and rng.random() < 0.5
    return replace(s, records=tuple(records), token_in_input=token_in_input)


#: The share of Lambda schedules whose records may be durable callbacks, and of their records that are.
DURABLE_SHARE = 0.3
DURABLE_RECORDS = 0.5


def _durable(s: Schedule) -> Schedule:
    """Make some records durable callbacks: one worker answering both kinds, in one batch.

    Drawn from a generator of its own, last, so that every other draw of a seed, and what older seeds mean, stay
    as they were. Activities are Step Functions' alone, and schedules over HTTP use callback-kit's Step Functions
    clients against an endpoint that serves that API only.
    """
    rng = random.Random(f"durable-{s.seed}")
    if s.driver == "activity" or s.over_http or rng.random() >= DURABLE_SHARE:
        return s
    records = [replace(r, durable=rng.random() < DURABLE_RECORDS) for r in s.records]
    for i, r in enumerate(records):
        if r.kind == "duplicate" and r.dup_of is not None:  # the same id twice: of the same kind, necessarily
            records[i] = replace(r, durable=records[r.dup_of].durable)
    return replace(s, records=tuple(records))


def _generate(seed: int, *, driver: Driver | None = None) -> Schedule:
    rng = random.Random(seed)
    chosen: Driver = driver or rng.choices(DRIVERS, weights=(5, 5, 5, 5, 5, 4))[0]
    if chosen == "sns" and not SNS_SUPPORTED:
        chosen = "eventbridge"
    remaining = round(rng.choice((rng.uniform(0.5, 3.0), rng.uniform(0.5, 15.0))), 3)
    margin = rng.choice((0.5, 1.0, 2.0, 2.0, 3.0))
    interval = rng.choice((None, 0.3, 1.0, 2.0, 5.0))
    common: dict[str, Any] = {
        "seed": seed,
        "driver": chosen,
        "margin": margin,
        "heartbeat_interval": interval,
        "max_attempts": rng.randint(2, 6),
        "base_delay": rng.choice((0.05, 0.1, 0.3)),
        "max_delay": rng.choice((0.5, 1.0, 2.0)),
        "real_client": rng.random() < 0.03,
        # Lambda drivers only for now: an activity's completion has no deadline, so under a tiny slice of the
        # quota it holds its slot for minutes and outlives the worker's shutdown grace (see docs/reliability.md).
        "bucket": _bucket(seed, least_burst=1.0 if chosen == "activity" else 0.0),
    }
    if not common["real_client"]:
        common["user_client"] = _user_client(seed)
    if chosen == "activity":
        n = rng.randint(1, 12)
        span = rng.uniform(1.0, 6.0)
        tasks = tuple(_record(rng, span, None, (1, 0, 0)) for _ in range(n))
        max_task = rng.choice((None, None, round(rng.uniform(0.5, 4.0), 3)))
        return Schedule(
            records=tasks,
            remaining=span,
            concurrency=rng.randint(1, 4),
            max_task_seconds=max_task,
            stop_at=rng.choice((None, None, None, round(rng.uniform(0.2, span), 3))),
            # At least a poll's hold: a shorter grace leaves a poll open after the stop (a documented limit).
            grace=rng.choice((1.5, 2.0, 4.0)),
            run_one=rng.random() < 0.25,
            poll_faults=rng.choice((0, 0, 0, 1, 3)),
            **common,
        )
    single = chosen in ("eventbridge", "direct", "sns")
    n = 1 if single else _batch_size(rng)
    groups = [f"g{i}" for i in range(rng.randint(2, 4))] if chosen == "fifo" else [None]
    kind_weights = (90, 4, 6) if rng.random() < 0.5 else (1, 0, 0)
    records = [_record(rng, remaining, rng.choice(groups), kind_weights) for _ in range(n)]
    if not single and n > 1 and rng.random() < 0.2:
        # Duplicates: SQS delivers at least once, so the same message (token) can come twice in one batch.
        for _ in range(rng.randint(1, max(1, n // 4))):
            src = rng.randrange(n)
            dst = rng.randrange(n)
            if src != dst and records[src].kind == "real":
                records[dst] = RecordPlan(
                    **{**records[dst].__dict__, "kind": "duplicate", "dup_of": src},
                )
    return Schedule(
        records=tuple(records),
        remaining=remaining,
        max_concurrency=rng.choice((1, 2, 4, 10, 10, 32)),
        **common,
    )
