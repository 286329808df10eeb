"""The user functions a schedule runs: well-behaved, hostile, slow, async, or raising what no one should raise.

One dispatcher serves every record of a schedule: the payload carries the record's index ``i``, and the
dispatcher runs that record's behaviour and notes when it started and ended (the checkers need to know what ran).
"""

from __future__ import annotations

import asyncio
import builtins
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import callback_kit as ck
from tests.schedules.plan import RecordPlan

#: How often a long function that honours cancellation looks at ck.is_cancelled(), in schedule seconds.
CANCEL_POLL = 0.1


class HostileError(Exception):
    """An exception that cannot be turned into text: ``str()`` and ``repr()`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ of a hostile exception")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ of a hostile exception")


class MembersRaise(Exception):
    """An exception that looks like a group but whose ``exceptions`` raises when read."""

    @property
    def exceptions(self) -> tuple[BaseException, ...]:
        raise RuntimeError("exceptions of a hostile group")


class _Group(Exception):
    def __init__(self, message: str, members: list[BaseException]) -> None:
        super().__init__(message)
        self.exceptions = tuple(members)


def _shared_groups() -> BaseException:
    """Five objects, 160,000 paths: four groups each holding the one below twenty times."""
    node: BaseException = ValueError("leaf")
    for level in range(4):
        node = _Group(f"level {level}", [node] * 20)
    return node


@dataclass
class FunctionRun:
    """What one record's function did (real monotonic times)."""

    started: float
    ended: float | None = None
    how: str = "running"  # returned / raised / base (a BaseException) / handed_off


@dataclass
class Runs:
    """Every function run of a schedule, by record index (a record may run more than once)."""

    by_record: dict[int, list[FunctionRun]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    active: int = 0

    def start(self, i: int) -> FunctionRun:
        run = FunctionRun(time.monotonic())
        with self.lock:
            self.by_record.setdefault(i, []).append(run)
            self.active += 1
        return run

    def end(self, run: FunctionRun, how: str) -> None:
        with self.lock:
            run.ended = time.monotonic()
            run.how = how
            self.active -= 1


def _exception(behaviour: str) -> BaseException | None:
    group: Any = getattr(builtins, "ExceptionGroup", None)
    table: dict[str, Callable[[], BaseException]] = {
        "raise": lambda: ValueError("the order is out of stock"),
        "async_raise": lambda: ValueError("async failure"),
        "task_failed": lambda: ck.TaskFailed("negative total", error="Order.Invalid"),
        "str_raises": HostileError,
        "exception_group": (
            (lambda: group("several things failed", [ValueError("first"), KeyError("second")]))
            if group is not None
            else (lambda: ValueError("no ExceptionGroup before Python 3.11"))
        ),
        "huge_message": lambda: ValueError("m" * 2_000_000),
        "cancelled_error": asyncio.CancelledError,
        "system_exit": lambda: SystemExit(3),
        "keyboard_interrupt": KeyboardInterrupt,
        "task_failed_object": lambda: ck.TaskFailed("bad order", error="Order.Invalid", cause={"sku": 7}),  # type: ignore[arg-type]
        "members_raise": MembersRaise,
        "shared_groups": _shared_groups,
    }
    make = table.get(behaviour)
    return make() if make is not None else None


def _work(plan: RecordPlan, scale: float) -> Any:
    """Do the record's work synchronously; return its value or raise its exception."""
    behaviour = plan.behaviour
    seconds = plan.duration * scale
    if behaviour == "long_honour":
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if ck.is_cancelled():
                return {"stopped": "cancelled"}
            time.sleep(CANCEL_POLL * scale)
        return {"stopped": "done"}
    if behaviour == "manual_beat":
        end = time.monotonic() + seconds
        while True:
            ck.heartbeat()
            if time.monotonic() >= end:
                break
            time.sleep(min(0.2 * scale, max(0.0, end - time.monotonic())))
        return {"beat": True}
    if seconds > 0:
        time.sleep(seconds)
    error = _exception(behaviour)
    if error is not None:
        raise error
    if behaviour == "huge_output":
        return {"blob": "x" * 300_000}
    if behaviour == "unserialisable":
        return {"handle": object()}
    if behaviour == "hand_off":
        token = ck.hand_off()
        return {"handed": len(token) > 0}
    return {"ok": True, "behaviour": behaviour}


def is_async(plans: Sequence[RecordPlan]) -> bool:
    """Whether the schedule's function is an ``async def`` (when any record asks for one)."""
    return any(p.behaviour.startswith("async") for p in plans)


def dispatcher(plans: Sequence[RecordPlan], scale: float, runs: Runs) -> Callable[[Any], Any]:
    """The user function of a schedule: sync, or ``async def`` when any record asks for one."""

    def run(payload: Any) -> Any:
        i = int(payload["i"]) if isinstance(payload, dict) and "i" in payload else -1
        if i < 0:
            raise ValueError("payload without the record index")
        record = runs.start(i)
        how = "raised"
        try:
            value = _work(plans[i], scale)
            how = "handed_off" if plans[i].behaviour == "hand_off" else "returned"
            return value
        except Exception:
            raise
        except BaseException:
            how = "base"
            raise
        finally:
            runs.end(record, how)

    if not is_async(plans):
        return run

    async def run_async(payload: Any) -> Any:
        await asyncio.sleep(0)
        return run(payload)

    return run_async
