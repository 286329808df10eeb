"""Injected time for tests: a clock that moves only when told, or when something sleeps on it."""

from __future__ import annotations


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
