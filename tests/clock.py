"""Injected time for tests: a clock that moves only when told, or when something sleeps on it."""

from __future__ import annotations

import time
from collections.abc import Callable


class FakeTime:
    """A clock whose ``sleep`` advances it and records the pause, so nothing really waits."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait, polling in real time, until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        time.sleep(0.002)
