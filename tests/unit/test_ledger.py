"""callback_kit.task.ledger: one owner per token, and nothing run again once answered, from many threads at once."""

from __future__ import annotations

import random
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from callback_kit.task.ledger import Ledger

WAIT = 30.0


def test_claim_release_cycle() -> None:
    ledger = Ledger()
    assert ledger.claim("k", "a") is None
    assert ledger.claim("k", "b") == "a"
    ledger.release("k", "b", answered=True)  # not the owner: no effect
    assert ledger.claim("k", "c") == "a"
    ledger.release("k", "a", answered=False)  # handed back: the redelivery runs again
    assert ledger.claim("k", "d") is None
    ledger.release("k", "d", answered=True)
    assert ledger.claim("k", "e") is True
    ledger.clear()
    assert ledger.claim("k", "f") is None


def test_only_the_newest_answers_are_remembered() -> None:
    ledger = Ledger(max_answered=2)
    for key in ("a", "b", "c"):
        assert ledger.claim(key, key) is None
        ledger.release(key, key, answered=True)
    assert ledger.claim("b", "x") is True  # and b is now the newest
    assert ledger.claim("a", "y") is None  # forgotten: the oldest


@pytest.fixture
def busy_switching() -> Iterator[None]:
    # Switch threads as often as possible, so that claims and releases interleave at every step.
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield None
    sys.setswitchinterval(old)


def test_no_two_runs_own_a_token_and_none_runs_after_its_answer(busy_switching: object) -> None:
    ledger = Ledger(max_answered=100_000)
    keys = [f"tok-{i}" for i in range(40)]
    owning: dict[str, int] = {}  # key -> the worker that owns it now (checked with atomic dict operations)
    answered_at: dict[str, int] = {}  # key -> how many answers were recorded for it
    problems: list[str] = []
    start = threading.Barrier(8)

    def worker(me: int) -> None:
        rng = random.Random(me)
        start.wait(WAIT)
        for _ in range(3000):
            key = rng.choice(keys)
            got = ledger.claim(key, me)
            if got is not None:
                continue  # another run owns it, or it was answered
            if owning.setdefault(key, me) != me:
                problems.append(f"{key} owned by {owning[key]} and {me}")
            if key in answered_at:
                problems.append(f"{key} ran again after it was answered")
            answered = rng.random() < 0.3
            if answered:
                answered_at[key] = answered_at.get(key, 0) + 1
            owning.pop(key, None)
            ledger.release(key, me, answered=answered)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert problems == []
    assert all(count == 1 for count in answered_at.values())
    assert answered_at  # the schedule did answer some tokens


class _HookedAnswered(OrderedDict[str, None]):
    """The answered keys, running ``hook`` once right after the first membership test: another thread's step."""

    hook: Callable[[], None] | None = None

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return found


class _HookedOwners(dict[str, Any]):
    """The owners, running ``hook`` once right after the first removal."""

    hook: Callable[[], None] | None = None

    def pop(self, key: str, default: Any = None) -> Any:
        value = super().pop(key, default)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return value


def test_a_claim_that_races_the_owners_answer_does_not_run_the_token_again() -> None:
    # B looks among the answered (not there yet), then A's release completes, then B takes ownership.
    ledger = Ledger()
    answered = _HookedAnswered()
    ledger._answered = answered
    assert ledger.claim("k", "A") is None
    answered.hook = lambda: ledger.release("k", "A", answered=True)
    assert ledger.claim("k", "B") is True


def test_a_claim_between_the_steps_of_a_release_finds_the_answer() -> None:
    # A's release gives up ownership; B claims right then: it must already see A's answer.
    ledger = Ledger()
    owners = _HookedOwners()
    ledger._owners = owners
    assert ledger.claim("k", "A") is None
    seen: list[Any] = []
    owners.hook = lambda: seen.append(ledger.claim("k", "B"))
    ledger.release("k", "A", answered=True)
    assert seen == [True]
