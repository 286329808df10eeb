"""A client-side rate limiter for SendTask* calls that adapts to throttling, and never waits past a deadline.

Step Functions meters SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat per account and region with token
buckets (3,000 burst and 500/s refill in the largest regions, 1,500 / 300 elsewhere). When a distributed Map
fans out thousands of callback tasks, every task retrying on its own turns a throttling storm into give-ups
and redeliveries. One :class:`RateLimiter` per Step Functions client (so one per process for the default
client) paces every completion and heartbeat sent through it instead:

* until the first ``ThrottlingException`` it does nothing (no lock, no wait: the hot path pays one attribute
  read);
* on a throttle the send rate drops to ``beta`` (0.8) times the rate Step Functions accepted lately (the
  answers' rate times their unthrottled share; after a cut, the calls accepted since it), and a token bucket
  holding one second of that rate starts pacing calls. Further throttles within :data:`HOLD` of a cut answer
  calls sent before it and cut no more;
* on each success the rate grows back along a cubic curve towards, then past, the rate that was throttled
  (TCP CUBIC, as in botocore's adaptive retry mode), capped at twice the measured rate.

Why not botocore's adaptive retry mode (``retries={"mode": "adaptive"}``)? Its ``ClientRateLimiter`` paces
one client, and its token acquisition blocks without any deadline; callback-kit must never wait past the Lambda
deadline (a wait that would outlast it is not started: the call goes out at once, and the sandbox is never frozen
mid-wait), and heartbeats must be skipped rather than queued when the bucket is dry. Its rate arithmetic is reused:
``botocore.retries.throttling.CubicCalculator``, imported on the first throttle. Two departures from it: the
cut starts from the *accepted* rate rather than the rate sent, so that a burst of demand meeting a dry bucket
is paced right in one or two steps instead of one 0.7x cut per window while nearly every call is refused; and
since that rate is already what the service allows, the cut is gentler (0.8 rather than 0.7), which keeps the
average rate within ~5% of the quota instead of ~8%.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

#: The slowest the limiter ever paces calls (calls per second).
MIN_RATE = 0.5
#: How long a heartbeat may wait for a token before it is skipped (the next beat covers it).
HEARTBEAT_MAX_WAIT = 0.2
#: Weight of the newest half-second in the measured send rate.
SMOOTHING = 0.8
#: Width of one bucket of the send-rate measurement.
RATE_BUCKET = 0.5
#: Answers needed in the current window before its own rate counts (a burst is thousands a second).
PARTIAL_MIN = 10
#: After a cut, further throttles within this many seconds cut no more: they answer calls sent before the cut
#: (TCP CUBIC reduces once per window), and a burst of them must not collapse the rate to the floor.
HOLD = 0.1
#: Answers since the last cut needed to trust the accepted rate measured over them.
MIN_SAMPLE = 10
#: Error codes meaning "the service's rate limit refused this call" (botocore's throttling codes).
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
    }
)


class RateLimiter:
    """A token bucket whose rate backs off on throttles and recovers on successes (see the module docstring).

    Args:
        clock: monotonic seconds; deadlines given to :meth:`acquire` are on this clock.
        sleep: how to wait (injected in tests).
        beta: the factor applied to the rate on a throttle.
        scale: the cubic recovery's scale constant (botocore's 0.4).

    Example:
        >>> t = [0.0]
        >>> limiter = RateLimiter(clock=lambda: t[0], sleep=lambda s: None)
        >>> limiter.acquire(deadline=None)  # never throttled: no pacing at all
        True
        >>> for _ in range(100):
        ...     t[0] += 0.01; limiter.on_success()
        >>> limiter.on_throttle(); limiter.rate < 100
        True
        >>> limiter.acquire(deadline=t[0])  # the bucket is dry and waiting would pass the deadline
        False
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        beta: float = 0.8,
        scale: float = 0.4,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._beta = beta
        self._scale = scale
        self._lock = threading.Lock()
        self.enabled = False
        self._cubic: Any = None
        self._cut_at = -math.inf
        self._rate = math.inf
        self._tokens = 0.0
        self._stamp = clock()
        # Measured send rate (answers per second), over RATE_BUCKET-wide buckets.
        self._measured = 0.0
        self._bucket = math.floor(self._stamp / RATE_BUCKET)
        self._count = 0
        self._since_cut = [0, 0]  # answers accepted and refused since the last cut
        self.throttles = 0

    @property
    def rate(self) -> float:
        """The calls per second now allowed (``inf`` until the first throttle)."""
        return self._rate

    @property
    def measured_rate(self) -> float:
        """The smoothed rate at which answers came back lately (calls per second)."""
        return self._measured

    def acquire(self, deadline: float | None = None, *, max_wait: float | None = None) -> bool:
        """Take a token, waiting for one if need be; False (and no token taken) if that would take too long.

        Args:
            deadline: a :attr:`clock` time by which the wait must end (``None``: no deadline).
            max_wait: the longest wait accepted, in seconds (heartbeats: :data:`HEARTBEAT_MAX_WAIT`).
        """
        if deadline is not None:
            limit = deadline - self._clock()
            max_wait = limit if max_wait is None else min(max_wait, limit)
        wait = self.reserve(max_wait)
        if wait is None:
            return False
        if wait > 0:
            self._sleep(wait)
        return True

    def reserve(self, max_wait: float | None = None) -> float | None:
        """Take a token now and return how long to wait before using it; ``None`` (nothing taken) if over ``max_wait``.

        For callers that wait with their own (injected, interruptible) sleep.

        Example:
            >>> RateLimiter().reserve(max_wait=0.0)  # never throttled: a token at once
            0.0
        """
        if not self.enabled:
            return 0.0
        with self._lock:
            now = self._clock()
            self._refill(now)
            wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate
            if max_wait is not None and wait > max_wait:
                return None
            # Reserve the token now (the balance may go negative): later callers queue behind this one.
            self._tokens -= 1.0
        return wait

    def observe(self, exc: BaseException | None) -> None:
        """Record the end of a call: ``None`` (answered), a throttle, another answer, or no answer at all.

        Example:
            >>> limiter = RateLimiter()
            >>> class Throttled(Exception):
            ...     response = {"Error": {"Code": "ThrottlingException"}}
            >>> limiter.observe(None); limiter.observe(Throttled()); limiter.throttles
            1
        """
        if exc is None:
            self.on_success()
            return
        response = getattr(exc, "response", None)
        if not isinstance(response, dict):
            return  # no answer (connection or read error): says nothing about the rate
        if response.get("Error", {}).get("Code") in THROTTLE_CODES:
            self.on_throttle()
        else:
            self.on_success()  # answered without throttling (TaskTimedOut, 5xx...): the rate was accepted

    def on_success(self) -> None:
        """Record an answered call (not throttled) and let the rate recover."""
        if not self.enabled:
            # The hot path until the first throttle: no lock. A count lost to a race only blurs the rate
            # estimate that the first cut starts from.
            self._record(self._clock(), throttled=False)
            return
        with self._lock:
            now = self._clock()
            measured = self._record(now, throttled=False)
            if self.enabled:
                self._set_rate(now, min(self._cubic.success_received(now), 2.0 * max(measured, MIN_RATE)))

    def on_throttle(self) -> None:
        """Record a throttled call: cut the rate and start (or keep) pacing."""
        with self._lock:
            now = self._clock()
            measured = self._record(now, throttled=True)
            self.throttles += 1
            # Cut from the rate Step Functions accepted lately rather than from the rate sent (botocore's
            # choice): when a burst of demand meets a dry bucket, that converges in a step or two instead of one
            # 0.7x cut per window while nearly every call is refused.
            ok, refused = self._since_cut
            if self.enabled:
                since = now - self._cut_at
                # Throttles within HOLD of a cut answer calls sent before it. After it, wait for a sample of
                # answers over at least another HOLD (or a second) to tell how much Step Functions accepts.
                if since < HOLD or ((ok + refused < MIN_SAMPLE or since < 2 * HOLD) and since < HOLD + 1.0):
                    return
                if ok + refused >= MIN_SAMPLE and refused * 3 >= ok:
                    # A quarter or more refused: more was sent than Step Functions allows, so what it accepted is
                    # what it allows. Unless most were refused, at most halve, though: a process starved of CPU
                    # also sends (and so gets accepted) little.
                    accepted = ok / max(since - HOLD, HOLD)
                    if refused < ok:
                        accepted = max(accepted, self._rate / 2)
                else:  # few refusals (or too few answers to tell): the rate in force is just over the limit
                    accepted = self._rate
                current = max(MIN_RATE, min(accepted, self._rate))
            else:  # the first throttle: the answers' rate, times the share accepted
                current = max(MIN_RATE, measured * ok / max(ok + refused, 1))
            if self._cubic is None:
                from botocore.retries.throttling import CubicCalculator

                self._cubic = CubicCalculator(
                    starting_max_rate=0, start_time=now, scale_constant=self._scale, beta=self._beta
                )
            new = self._cubic.error_received(current, now)
            self._cut_at = now
            self._since_cut = [0, 0]
            if not self.enabled:
                # Start with an empty bucket: Step Functions has just said "slow down".
                self.enabled, self._tokens, self._stamp = True, 0.0, now
            self._set_rate(now, min(new, 2.0 * max(measured, MIN_RATE)))

    def _set_rate(self, now: float, rate: float) -> None:
        self._refill(now)
        self._rate = max(rate, MIN_RATE)
        # The bucket holds one second of the rate (at least one token), as botocore's does.
        self._tokens = min(self._tokens, max(self._rate, 1.0))

    def _refill(self, now: float) -> None:
        if self.enabled and self._rate < math.inf:
            self._tokens = min(max(self._rate, 1.0), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def _record(self, now: float, *, throttled: bool) -> float:
        """Count one answer; return the send rate: the smoothed one, or the current bucket's if higher.

        The current bucket counts too because the smoothed rate lags by a bucket or more: right after a burst
        (when the first throttle comes) it may still read zero, and a cap of twice zero would stall the limiter.
        """
        bucket = math.floor(now / RATE_BUCKET)
        if bucket > self._bucket:
            current = self._count / ((bucket - self._bucket) * RATE_BUCKET)
            self._measured = SMOOTHING * current + (1 - SMOOTHING) * self._measured
            self._count = 0
            self._bucket = bucket
        self._count += 1
        if now - self._cut_at >= HOLD:  # answers within the hold are to calls sent before the cut
            self._since_cut[1 if throttled else 0] += 1
        if self._count < PARTIAL_MIN:
            return self._measured  # too few answers in this window to say more than the smoothed rate
        return max(self._measured, self._count / max(now - bucket * RATE_BUCKET, RATE_BUCKET / 10))


class _Unpaced(RateLimiter):
    """What clients that are not botocore clients get: nothing is ever paced."""

    def observe(self, exc: BaseException | None) -> None:
        return None

    def on_success(self) -> None:
        return None

    def on_throttle(self) -> None:
        return None


#: The limiter of every client that is not a botocore client (in-memory fakes): it never paces.
UNPACED: RateLimiter = _Unpaced()

_limiters_lock = threading.Lock()
_limiters: dict[tuple[str | None, str], RateLimiter] = {}


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
    key = (getattr(meta, "region_name", None), endpoint)
    limiter = _limiters.get(key)
    if limiter is None:
        with _limiters_lock:
            limiter = _limiters.setdefault(key, RateLimiter())
    return limiter
