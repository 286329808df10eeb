"""A client-side rate limiter for SendTask* calls: an AIMD token bucket that serves heartbeats first.

Step Functions meters SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat per account and region with token
buckets (3,000 burst and 500/s refill in the largest regions, 1,500 / 300 elsewhere), and a fleet of workers
shares them, so one process sees an arbitrary slice. One :class:`RateLimiter` per endpoint paces every call sent
through it. It follows five rules, each checkable on its own:

1. **Off until the service says twice that it is dry.** Until then nothing waits (the hot path counts the call
   and reads the clock). One throttle may be another process's burst; a throttle of a call sent *after* a first
   one shows the bucket is dry for this process too. Only then does pacing start, at ``beta`` times the rate this
   process was sending at (calls over about the last second): that rate was more than the service gave it.
2. **A token bucket with places.** Calls take tokens from a bucket that refills at :attr:`RateLimiter.rate` and
   holds one second of it, like the service's own. A call that finds it dry takes the next place in the queue
   and waits for it. A place is a count of tokens, not a time: when the rate moves, every waiting turn moves
   with it (later after a cut, earlier after a rise), and no call overtakes another.
3. **AIMD, one cut per rate.** A throttle of a call sent at the current rate multiplies it by ``beta`` (0.9) and
   starts a new *generation*. Throttles of calls sent at an earlier, higher rate are echoes of a cut already
   made and cut nothing, so a burst of a thousand throttles is one signal. Every call accepted after waiting
   for its turn (the limiter, not demand, was the bound) adds ``1 - beta``: over a second at rate R that is
   ``(1 - beta) x R``, so a second of clean answers undoes one cut.
4. **The front of the queue.** Heartbeats, and throttled calls asking again, take the place at the head (the
   next token); every waiting place moves back by one. A missed beat fails a healthy task while a late
   completion only delays; and a throttled call keeps the turn it had instead of queueing behind calls that
   asked after it.
5. **Idle means off.** Once the bucket is full (nothing has waited for a second), the limiter steps aside, so
   that the next invocation meets the service's own burst rather than an old estimate.

Why that is enough: the service accepts at most its refill rate r (plus its burst), and a throttle is proof that
the rate sent was above what is left for this process. Cuts start from above r and stop at the first rate the
service accepts, so the rate settles in ``[beta x r, r]`` and climbs back at 10% a second: the long-run average
is at least ``(1 + beta) / 2`` = 95% of r, and while the rate is still too high the service is kept busy at r
anyway (a throttled call costs a round trip, not a token). The one constant, ``beta``, sets how close to r that
is; no measurement window, hold or minimum sample has to be right for the rest to work. ``bench/quotamatrix.py``
checks it over bursts from 50 to 3,000, refills from 50 to 500/s, up to 1,000 calls at once and batches of up
to 10,000 (docs/performance.md).

Why not botocore's adaptive retry mode: its ``ClientRateLimiter`` blocks without a deadline, has no notion of a
heartbeat going first, and its cubic recovery needs tuned scales; callback-kit must never wait past the Lambda's
deadline (:meth:`RateLimiter.reserve` takes the longest wait the caller accepts).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from callback_kit.task.classify import THROTTLE_CODES

#: The factor a throttle cuts the rate by; each accepted call that waited adds ``1 - BETA`` calls per second.
BETA = 0.9
#: Seconds of the rate the bucket holds (the service's bucket holds seconds of its own).
DEPTH = 1.0
#: The slowest the limiter ever paces calls (calls per second): a bucket never refills slower.
MIN_RATE = 0.5


class Ticket(NamedTuple):
    """A place in the limiter's queue: send once :meth:`RateLimiter.wait` says 0."""

    #: Seconds to wait before sending, when it was issued (the rate may change while its holder waits).
    wait: float
    #: The generation (rate) it was issued under.
    generation: int
    #: Its place: the count of tokens handed out when it was taken (0 while pacing is off).
    place: float = 0.0


class RateLimiter:
    """An AIMD token bucket shared by every call to one endpoint (see the module docstring for the rules).

    Args:
        clock: monotonic seconds; the limiter's times are on this clock.
        beta: the factor a throttle cuts the rate by.

    Example:
        >>> t = [0.0]
        >>> limiter = RateLimiter(clock=lambda: t[0])
        >>> limiter.reserve(max_wait=0.0).wait  # never throttled: no pacing at all
        0.0
        >>> sent = [limiter.reserve() for _ in range(100)]  # 100 calls in one instant...
        >>> limiter.observe(Throttled(), sent[0])  # ...the first throttle may be someone else's burst
        >>> limiter.enabled
        False
        >>> limiter.observe(Throttled(), limiter.reserve())  # a call sent after it is throttled too
        >>> limiter.enabled, round(limiter.rate)  # 0.9 x the 102 calls of the last second
        (True, 92)
        >>> limiter.reserve(max_wait=0.001) is None  # the bucket is dry: no token within 1 ms
        True
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, beta: float = BETA) -> None:
        self._clock = clock
        self._beta = beta
        self._lock = threading.Lock()
        #: Whether calls are paced (after two throttles in a row; until the bucket is full again).
        self.enabled = False
        #: Bumped by every cut: tickets of an earlier generation were issued at a higher rate.
        self.generation = 0
        self._struck = False  # one throttle seen while off: the next current one turns pacing on
        self._rate = math.inf
        # The queue as two counters: tokens handed out (each ticket's place) and tokens the bucket has made so
        # far (capped at a full bucket past the last place). A place is served once the second passes it, so a
        # change of rate moves every waiting place's time at once, and no place is ever overtaken.
        self._taken = 0.0
        self._made = 0.0
        self._stamp = clock()
        self._sent = 0.0  # while off: calls sent, decaying by e per second (about those of the last second)
        self._since = self._stamp  # when that count started
        self.throttles = 0

    @property
    def rate(self) -> float:
        """The calls per second now allowed (``inf`` while pacing is off)."""
        return self._rate if self.enabled else math.inf

    def token_time(self) -> float:
        """Seconds the bucket takes to refill one token (0 while pacing is off)."""
        return 1.0 / self._rate if self.enabled else 0.0

    def reserve(self, max_wait: float | None = None, *, front: bool = False) -> Ticket | None:
        """Take a place in the queue; ``None`` (nothing taken) if its turn is more than ``max_wait`` seconds away.

        Args:
            max_wait: the longest wait accepted (``None``: any).
            front: take the place at the head of the queue (the next token), moving every waiting place back
                by one: for heartbeats, and for a throttled call asking again, which keeps the turn it had.

        Example:
            >>> RateLimiter().reserve(max_wait=0.0).wait
            0.0
        """
        if self.enabled:
            with self._lock:
                self._refill(self._clock())
                if self._made - self._taken < self._depth():
                    if front and self._made - self._taken < 1.0:
                        # Unmake a token: every waiting place is one further on, and this one is served next.
                        self._made -= 1.0
                        wait = 1.0 / self._rate
                        if max_wait is not None and wait > max_wait:
                            self._made += 1.0
                            return None
                        return Ticket(wait, self.generation, self._made + 1.0)
                    wait = max(0.0, self._taken + 1.0 - self._made) / self._rate
                    if max_wait is not None and wait > max_wait:
                        return None
                    self._taken += 1.0
                    return Ticket(wait, self.generation, self._taken)
                self._disengage()  # a full bucket: nothing has waited for a second
        now = self._clock()
        # No lock: a count lost to a race only makes the rate pacing would start at a little lower.
        self._sent = self._sent * math.exp(min(0.0, self._stamp - now)) + 1.0
        self._stamp = now
        return Ticket(0.0, self.generation)

    def wait(self, ticket: Ticket) -> float:
        """Seconds until ``ticket``'s place comes up at the rate now in force (0: send now).

        Holders sleep half of it and ask again (completion's ``Completer``): a cut moves their turn later, a
        rise earlier, and none loses its place or, unless the rate doubles while it sleeps, is late for it.
        """
        if ticket.wait <= 0 or not self.enabled:
            return 0.0
        with self._lock:
            self._refill(self._clock())
            # Less than a millionth of a token short is float rounding, not a wait (a sleep that short may not
            # move a clock at all).
            short = ticket.place - self._made
            return short / self._rate if short > 1e-6 else 0.0

    def observe(self, exc: BaseException | None, ticket: Ticket | None) -> None:
        """Record the end of a call sent on ``ticket``: ``None`` (accepted), a throttle, or another error.

        A call sent without a ticket (none came before its deadline) teaches nothing about the rate.

        Example:
            >>> limiter = RateLimiter()
            >>> limiter.observe(None, limiter.reserve()); limiter.observe(Throttled(), limiter.reserve())
            >>> limiter.throttles
            1
        """
        if ticket is None:
            return
        if exc is None:
            self._accepted(ticket)
            return
        response = getattr(exc, "response", None)
        if not isinstance(response, dict):
            return  # no answer (connection or read error): says nothing about the rate
        if response.get("Error", {}).get("Code") in THROTTLE_CODES:
            self._throttled(ticket)
        else:
            self._accepted(ticket)  # answered without throttling (TaskTimedOut, 5xx...): the rate was accepted

    def _accepted(self, ticket: Ticket) -> None:
        if ticket.wait > 0 and self.enabled:  # it waited: the limiter, not demand, was the bound
            with self._lock:
                if ticket.generation == self.generation:
                    self._rate += 1.0 - self._beta

    def _throttled(self, ticket: Ticket) -> None:
        with self._lock:
            self.throttles += 1
            if ticket.generation != self.generation:
                return  # sent at an earlier, higher rate: an echo of a cut already made
            now = self._clock()
            self.generation += 1
            if not self.enabled and not self._struck:
                self._struck = True  # maybe another process's burst: see whether a call sent now gets through
                return
            if not self.enabled:
                # The calls sent per second, weighted to the last second: the count over the weight of the time
                # it covers (a process a tenth of a second old has sent a tenth of a second's calls).
                sent = self._sent * math.exp(min(0.0, self._stamp - now))
                sent /= -math.expm1(min(0.0, self._since - now)) or 1.0
                # Start with an empty bucket: the service has just said twice that its own is empty.
                self.enabled, self._rate, self._made, self._taken = True, max(MIN_RATE, sent), 0.0, 0.0
                self._stamp = now
            self._refill(now)
            self._rate = max(MIN_RATE, self._rate * self._beta)

    def _depth(self) -> float:
        return max(1.0, self._rate * DEPTH)

    def _disengage(self) -> None:
        self.enabled, self._struck, self._rate = False, False, math.inf
        self._sent, self._since = 0.0, self._stamp

    def _refill(self, now: float) -> None:
        if self.enabled:
            self._made = min(self._taken + self._depth(), self._made + (now - self._stamp) * self._rate)
        self._stamp = now


class Throttled(Exception):
    """A stand-in for a throttled botocore call (for examples and tests)."""

    def __init__(self) -> None:
        super().__init__("Rate exceeded")
        self.response: dict[str, Any] = {"Error": {"Code": "ThrottlingException"}}


class _Unpaced(RateLimiter):
    """What clients that are not botocore clients get: nothing is ever paced."""

    def observe(self, exc: BaseException | None, ticket: Ticket | None) -> None:
        return None


#: The limiter of every client that is not a botocore client (in-memory fakes): it never paces.
UNPACED: RateLimiter = _Unpaced()

_limiters_lock = threading.Lock()
_limiters: dict[tuple[str | None, str | None, str], RateLimiter] = {}


def limiter_for(client: Any) -> RateLimiter:
    """The limiter shared by every call made through ``client`` and any other client for the same endpoint.

    Step Functions' quota is per account and region, so botocore clients for the same region and endpoint share
    one limiter. Objects without botocore's ``meta.endpoint_url`` (in-memory fakes in tests) get
    :data:`UNPACED`: a test's injected throttles must not make it wait in real time.

    Example:
        >>> class Fake: ...
        >>> limiter_for(Fake()) is UNPACED
        True
    """
    meta = getattr(client, "meta", None)
    endpoint = getattr(meta, "endpoint_url", None)
    if not isinstance(endpoint, str):
        return UNPACED
    # The service too: Step Functions' and Lambda's quotas are separate buckets, even behind one endpoint URL
    # (AWS_ENDPOINT_URL pointing every service at a local emulator).
    service = getattr(getattr(meta, "service_model", None), "service_name", None)
    key = (getattr(meta, "region_name", None), service if isinstance(service, str) else None, endpoint)
    limiter = _limiters.get(key)
    if limiter is None:
        with _limiters_lock:
            limiter = _limiters.setdefault(key, RateLimiter())
    return limiter
