"""Shared pieces of the reliability suite: a scripted Step Functions fake, sources, and the per-task invariant.

The invariant (DESIGN.md, "Nothing is lost"): every task either ends with exactly one definitive outcome (a
callback that Step Functions applied, or Step Functions closing it itself) or the message that carried its token
is handed back for redelivery; a token never gets both a success and a failure; and within one delivery, no
completion is sent for a token after Step Functions said that its task is closed.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from callback_kit.logs import get_logger
from callback_kit.task.classify import CLOSED_CODES
from callback_kit.task.completion import RetryPolicy
from callback_kit.task.heartbeat import HeartbeatScheduler
from callback_kit.testing import Call, FakeStepFunctions, client_error, direct_event, eventbridge_event, sqs_event

LambdaSource = Literal["sqs", "fifo", "eventbridge", "direct"]
LAMBDA_SOURCES: tuple[LambdaSource, ...] = ("sqs", "fifo", "eventbridge", "direct")
COMPLETIONS = ("SendTaskSuccess", "SendTaskFailure")
#: The error name the test functions fail their tasks with.
ERROR_USER = "Order.OutOfStock"


def another_sandbox(fake: Any) -> None:
    """Make the next invocation behave as in another Lambda sandbox: one that never answered these tokens."""
    from callback_kit.task.ledger import ledger_for

    ledger_for(fake).clear()


def no_sleep_policy(max_attempts: int = 4) -> RetryPolicy:
    """A retry policy that never sleeps and always waits the same (jitter pinned), so runs are reproducible."""
    return RetryPolicy(max_attempts=max_attempts, sleep=lambda _s: None, random=lambda: 0.5)


class FakeClock:
    """A clock for the heartbeat scheduler that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def manual_scheduler(clock: FakeClock) -> HeartbeatScheduler:
    """A heartbeat scheduler without a thread or jitter: beats happen when a test calls ``run_pending``."""
    return HeartbeatScheduler(clock=clock, start_thread=False, jitter=0.0)


@dataclass
class ScriptedStepFunctions(FakeStepFunctions):
    """FakeStepFunctions that can also *close* a task on the Nth call of an API, as the real service does.

    A fault that says "closed" (TaskTimedOut, TaskDoesNotExist, InvalidToken) is only realistic if the task really
    is closed: :meth:`close_on` closes it at that call, so that every later call for the token is refused too.
    It also records every outcome Step Functions applied (including calls whose response was then lost).
    """

    applied: dict[str, list[str]] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)
    _close_at: dict[tuple[str, int], str] = field(default_factory=dict)

    def close_on(self, api: str, nth: int, code: str) -> None:
        """On the ``nth`` call of ``api`` since this fake was made (1-based), close its task and answer ``code``."""
        self._close_at[(api, nth)] = code

    def _handle(self, api: str, token: str, params: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        with self._lock:
            n = self._counts[api] = self._counts.get(api, 0) + 1
            code = self._close_at.get((api, n))
            if code is not None:
                # Closed by Step Functions (timed out, stopped): this call and every later one are refused.
                self.close_task(token, reason=code)
                self.calls.append(Call(api, token, params, code))
                raise client_error(api, code)
            before = self.tasks[token].outcome if token in self.tasks else None
        try:
            return super()._handle(api, token, params, timeout)
        finally:
            with self._lock:
                after = self.tasks[token].outcome if token in self.tasks else None
                if after is not None and after is not before:
                    self.applied.setdefault(token, []).append(str(after[0]))


@dataclass
class Delivery:
    """One Lambda invocation: what it returned or raised, and the calls it made."""

    response: Any
    raised: BaseException | None
    calls: list[Call]

    @property
    def redelivered_ids(self) -> set[str]:
        """SQS message ids reported as batch item failures."""
        if not isinstance(self.response, dict):
            return set()
        return {item["itemIdentifier"] for item in self.response.get("batchItemFailures", [])}


def invoke(fake: FakeStepFunctions, handler: Callable[[Any, Any], Any], event: Any, context: Any = None) -> Delivery:
    """Call ``handler`` as Lambda would, capturing its response or exception and the calls it made."""
    start = len(fake.calls)
    try:
        response, raised = handler(event, context), None
    except Exception as exc:
        response, raised = None, exc
    return Delivery(response, raised, list(fake.calls[start:]))


@dataclass(frozen=True)
class Message:
    """One task's message as a source carries it: the token, and the record id that identifies it."""

    token: str
    record_id: str | None


def build_event(source: LambdaSource, bodies: Sequence[dict[str, Any]]) -> tuple[Any, list[str | None]]:
    """An event of ``source`` carrying ``bodies`` (one only for EventBridge and direct), and its record ids."""
    if source in ("sqs", "fifo"):
        event = sqs_event(*bodies, fifo=source == "fifo")
        return event, [r["messageId"] for r in event["Records"]]
    assert len(bodies) == 1, "EventBridge and direct invokes carry one task"
    if source == "eventbridge":
        event = eventbridge_event(bodies[0])
        return event, [event["id"]]
    body = dict(bodies[0])
    return direct_event(body.pop("TaskToken"), body), [None]


_counter = itertools.count()


def new_token(fake: FakeStepFunctions, length: int = 0) -> str:
    """Open a task and return its token (a deterministic one of ``length`` characters when given)."""
    if length:
        n = next(_counter)
        return fake.open_task(f"TOKEN{n:08d}".ljust(length, "x"))
    return fake.open_task()


def check_task_invariant(
    fake: ScriptedStepFunctions, token: str, deliveries: Sequence[Delivery], redelivered: Sequence[bool]
) -> str:
    """Assert the invariant for one token over its deliveries; return how it ended.

    Args:
        deliveries: every invocation that carried the token, in order.
        redelivered: for each delivery, whether its message was handed back for redelivery.

    Returns:
        ``"success"``, ``"failure"`` (applied callbacks), ``"closed"`` (Step Functions closed it) or
        ``"redelivered"`` (unanswered, and its message was handed back by the last delivery).
    """
    applied = fake.applied.get(token, [])
    assert len(applied) <= 1, f"more than one outcome applied for one token: {applied}"
    for delivery in deliveries:
        mine = [c for c in delivery.calls if c.token == token]
        closed_seen = False
        answered = False
        for call in mine:
            if call.api in COMPLETIONS:
                assert not closed_seen, f"{call.api} sent after Step Functions reported the task closed"
                assert not answered, f"{call.api} sent after an accepted completion"
            if call.result in CLOSED_CODES:
                closed_seen = True
            if call.api in COMPLETIONS and call.result == "ok":
                answered = True
    task = fake.tasks[token]
    if applied:
        return applied[0]
    if task.closed_reason is not None:
        return "closed"
    assert redelivered, "task never delivered"
    assert redelivered[-1], "task left unanswered and its message was not handed back"
    return "redelivered"


class ListHandler(logging.Handler):
    """Keeps every record it is given, formatted, for assertions on what was logged."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        # Everything a JSON or text formatter could print: message, arguments, extras, exception text.
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name} {record.levelname} {text} {extras!r}")


_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def captured_logs(*names: str, level: int = logging.DEBUG) -> Iterator[ListHandler]:
    """Attach a :class:`ListHandler` to the library's logger (and ``names``) at ``level`` for the block."""
    handler = ListHandler()
    loggers = [logging.getLogger(get_logger().service), *(logging.getLogger(n) for n in names)]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(level)
    try:
        yield handler
    finally:
        for lg, old in saved:
            lg.removeHandler(handler)
            lg.setLevel(old)
