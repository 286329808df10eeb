"""At the quota: many completions from one process through a Step Functions that enforces its token bucket.

The fake refuses SendTask* calls with ``ThrottlingException`` once its bucket is dry (3,000 burst, 500/s refill,
as in us-east-1; quick mode keeps the shape with 1,500 calls, 500 burst, 250/s). Completions come from SQS
batches of 500 records run with ``max_concurrency=100``, far more than the bucket allows, so the run is paced
by the bucket alone. The rate the bucket allows over the run is ``burst + refill x elapsed``; the target is to
deliver every completion (none handed back for redelivery) at >= 90% of that.

Baseline: the same run with the shared rate limiter switched off (each task retrying on its own, as before).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bench.common import Row

BATCH = 500
CONCURRENCY = 100


class BucketedStepFunctions:
    """An in-memory Step Functions whose SendTask* calls share the account's token bucket.

    It carries a botocore-like ``meta`` (an endpoint of its own), so callback-kit paces it as it paces a real
    client; in-memory fakes without one are never paced.
    """

    def __init__(
        self,
        burst: float,
        refill: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        latency: float = 0.0,
    ) -> None:
        import types
        import uuid

        from callback_kit.testing import FakeStepFunctions

        self.meta = types.SimpleNamespace(region_name="us-east-1", endpoint_url=f"bucketed://{uuid.uuid4().hex}")
        self.inner = FakeStepFunctions()
        self.burst, self.refill = burst, refill
        self._tokens = burst
        self._clock, self._sleep, self._latency = clock, sleep, latency
        self._stamp = clock()
        self._lock = threading.Lock()
        self.accepted = 0
        self.throttled = 0
        #: When each token's heartbeats were accepted (on ``clock``).
        self.beats: dict[str, list[float]] = {}

    def _take(self, api: str) -> None:
        from botocore.exceptions import ClientError

        if self._sleep is not None:
            self._sleep(self._latency / 2)  # the request's way there; the answer's way back is in _answered
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.refill)
            self._stamp = now
            accepted = self._tokens >= 1
            if accepted:
                self._tokens -= 1
                self.accepted += 1
            else:
                self.throttled += 1
        self._answered()
        if accepted:
            return
        response: Any = {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        }
        raise ClientError(response, api)

    def _answered(self) -> None:
        if self._sleep is not None:
            self._sleep(self._latency / 2)

    def send_task_success(self, **params: Any) -> Any:
        """SendTaskSuccess, if the bucket has a token."""
        self._take("SendTaskSuccess")
        return self.inner.send_task_success(**params)

    def send_task_failure(self, **params: Any) -> Any:
        """SendTaskFailure, if the bucket has a token."""
        self._take("SendTaskFailure")
        return self.inner.send_task_failure(**params)

    def send_task_heartbeat(self, **params: Any) -> Any:
        """SendTaskHeartbeat, if the bucket has a token."""
        self._take("SendTaskHeartbeat")
        self.beats.setdefault(params["taskToken"], []).append(self._clock())
        return self.inner.send_task_heartbeat(**params)


def _drive(n: int, burst: float, refill: float, limiter: bool) -> dict[str, float]:
    import callback_kit as ck
    import callback_kit.task.completion as completion
    from callback_kit.task.ratelimit import UNPACED
    from callback_kit.testing import FakeLambdaContext, sqs_event

    fake = BucketedStepFunctions(burst, refill)
    if not limiter:
        completion.limiter_for = lambda client: UNPACED  # type: ignore[attr-defined]
    handler: Any = ck.callback_handler(client=fake, max_concurrency=CONCURRENCY)(lambda payload: {"ok": True})
    tokens = [fake.inner.open_task() for _ in range(n)]
    handed_back = 0
    start = time.monotonic()
    for first in range(0, n, BATCH):
        event = sqs_event(*({"TaskToken": t} for t in tokens[first : first + BATCH]))
        answer: Any = handler(event, FakeLambdaContext(remaining_ms=900_000)) or {}
        handed_back += len(answer.get("batchItemFailures", []))
    elapsed = time.monotonic() - start
    delivered = sum(1 for t in tokens if fake.inner.outcome(t) is not None)
    return {
        "elapsed": elapsed,
        "delivered": delivered,
        "handed_back": handed_back,
        "throttled": fake.throttled,
        "share": min(1.0, delivered / (burst + refill * elapsed)),
    }


def run(quick: bool) -> list[Row]:
    """10,000 completions against a 3,000 / 500 per second bucket (quick: 1,500 against 500 / 250)."""
    n, burst, refill = (1500, 500.0, 250.0) if quick else (10_000, 3000.0, 500.0)
    ours = _drive(n, burst, refill, limiter=True)
    base = _drive(n, burst, refill, limiter=False)
    case = f"{n} completions, bucket {burst:.0f} + {refill:.0f}/s"
    return [
        Row(
            "quota",
            f"{case}: delivered, none handed back",
            f"{ours['delivered']:.0f} / {ours['handed_back']:.0f} back",
            f"{base['delivered']:.0f} / {base['handed_back']:.0f} back",
            "no shared limiter (each task retries alone)",
            ours["delivered"] / max(base["delivered"], 1),
            "x delivered",
            f"{n} / 0 back",
            ours["delivered"] == n and ours["handed_back"] == 0,
        ),
        Row(
            "quota",
            f"{case}: share of the bucket's allowance used",
            f"{ours['share']:.0%} in {ours['elapsed']:.1f} s",
            f"{base['share']:.0%} in {base['elapsed']:.1f} s",
            "no shared limiter (each task retries alone)",
            ours["share"] / max(base["share"], 1e-9),
            "x rate",
            ">= 90%",
            ours["share"] >= 0.9,
        ),
        Row(
            "quota",
            f"{case}: throttled calls",
            f"{ours['throttled']:.0f}",
            f"{base['throttled']:.0f}",
            "no shared limiter (each task retries alone)",
            ours["throttled"] / max(base["throttled"], 1),
            "x throttles",
        ),
    ]
