"""Randomised soak: over a thousand tasks through mixed sources, faults, handler outcomes and duplicate deliveries.

Seeded and reproducible (hypothesis with ``derandomize=True``, no example database, records run one at a time and
time is simulated), it checks the per-task invariant of ``harness.check_task_invariant`` for every task and prints
its counts. A task's function either returns, raises, runs "slow" (Step Functions times the task out while it runs,
which a heartbeat then reports), returns a huge output (> 256 KiB) or a value that is not JSON. Messages handed back
are redelivered (up to ``MAX_RECEIVES``, then they count as dead-lettered), and any message may be delivered twice.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import callback_kit as ck
from callback_kit.activity import ActivityWorker
from callback_kit.exceptions import ERROR_OUTPUT_NOT_SERIALIZABLE, ERROR_OUTPUT_REJECTED, ERROR_OUTPUT_TOO_LARGE
from callback_kit.logs import fingerprint
from tests.reliability.harness import (
    ERROR_USER,
    Delivery,
    FakeClock,
    ScriptedStepFunctions,
    build_event,
    check_task_invariant,
    invoke,
    manual_scheduler,
    new_token,
    no_sleep_policy,
)

MAX_RECEIVES = 5  # the queue's maxReceiveCount: after that, SQS moves the message to the DLQ
MAX_ATTEMPTS = 3
EXAMPLES = 60
URL = "https://states.us-east-1.amazonaws.com/"
TRANSIENT: list[Any] = [
    "ThrottlingException",
    "InternalFailure",
    "ServiceUnavailable",
    "KmsThrottlingException",
    EndpointConnectionError(endpoint_url=URL),
    ConnectionClosedError(endpoint_url=URL),
    ReadTimeoutError(endpoint_url=URL),
]
OTHER = ["InvalidOutput", "ValidationException", "KmsAccessDeniedException"]
CLOSED = ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"]
APIS = ["SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"]
BEHAVIOURS = ["return", "return", "return", "raise", "raise", "slow", "huge", "not-json"]
SOURCES = ["sqs", "sqs", "fifo", "eventbridge", "direct", "activity"]
#: The errors a task may fail with, by what its function did.
FAILURE_ERRORS = {
    "raise": {ERROR_USER, ERROR_OUTPUT_REJECTED},
    "huge": {ERROR_OUTPUT_TOO_LARGE, ERROR_OUTPUT_REJECTED},
    "not-json": {ERROR_OUTPUT_NOT_SERIALIZABLE, ERROR_OUTPUT_REJECTED},
    "return": {ERROR_OUTPUT_REJECTED},
    "slow": {ERROR_OUTPUT_REJECTED},
}
SOAK = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # No shrinking: a failure names its world (source, behaviours, calls) itself, and shrinking a soak takes minutes.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Soak:
    """One example's world: the fake service, the handler, and the tasks with what their functions do."""

    def __init__(self) -> None:
        # Counted here and added to the run's totals only when the example completes (hypothesis may abandon one).
        self.totals: Counter[str] = Counter()
        self.queued: list[tuple[Any, int]] = []  # (the fake's fault entry, its initial times)
        self.closes: list[tuple[str, int]] = []
        self.fake = ScriptedStepFunctions()
        self.clock = FakeClock()
        self.scheduler = manual_scheduler(self.clock)
        self.behaviour: dict[str, str] = {}  # token -> behaviour
        self.by_fp: dict[str, str] = {}  # fingerprint -> token
        options: dict[str, Any] = {
            "client": self.fake,
            "retry": no_sleep_policy(MAX_ATTEMPTS),
            "scheduler": self.scheduler,
            "heartbeat_interval": 10,
            "max_concurrency": 1,
        }
        self.handler = ck.callback_handler(**options)(self.work)
        self.worker = ActivityWorker(
            "arn:aws:states:us-east-1:123456789012:activity:soak",
            self.work,
            client=self.fake,
            retry=no_sleep_policy(MAX_ATTEMPTS),
            scheduler=self.scheduler,
            heartbeat_interval=10,
        )

    def work(self, payload: dict[str, Any]) -> Any:
        token = self.by_fp[ck.current_task().token_fingerprint]
        behaviour = self.behaviour[token]
        if behaviour == "slow":
            # Runs past the task's timeout: Step Functions closes it, and the next heartbeat says so.
            self.fake.close_task(token)
            self.clock.advance(10)
            self.scheduler.run_pending()
            assert ck.is_cancelled()
            return {"late": True}
        self.clock.advance(10)  # one heartbeat's worth of work
        self.scheduler.run_pending()
        if behaviour == "raise":
            raise ck.TaskFailed("no stock", error=ERROR_USER)
        if behaviour == "huge":
            return {"blob": "x" * 270_000}
        if behaviour == "not-json":
            return object()
        return {"n": payload["n"]}

    def new_task(self, behaviour: str, n: int) -> dict[str, Any]:
        token = new_token(self.fake)
        self.behaviour[token] = behaviour
        self.by_fp[fingerprint(token)] = token
        self.totals["tasks"] += 1
        self.totals[f"behaviour:{behaviour}"] += 1
        return {"TaskToken": token, "n": n}

    def inject(self, data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["transient", "transient", "other", "closed"]))
        api = data.draw(st.sampled_from(APIS))
        skip = data.draw(st.integers(0, 3))
        self.totals["faults injected"] += 1
        if kind == "closed":
            nth = sum(1 for c in self.fake.calls if c.api == api) + skip + 1  # every call is recorded
            self.fake.close_on(api, nth, data.draw(st.sampled_from(CLOSED)))
            self.closes.append((api, nth))
            return
        error = data.draw(st.sampled_from(TRANSIENT if kind == "transient" else OTHER))
        # A persistent fault (KMS access denied for a while, say) outlasts every receive: the message dead-letters.
        times = data.draw(st.sampled_from([1, 1, 2, MAX_ATTEMPTS, 4 * MAX_RECEIVES]))
        landed = kind == "transient" and data.draw(st.booleans())
        self.fake.inject(api, error, times=times, skip=skip, landed=landed)
        self.queued.append((self.fake._faults[-1], times))

    def faults_fired(self) -> int:
        """How many injected faults were answered (a fault of ``times=n`` counts once per answer)."""
        fired = sum(initial - int(entry.times) for entry, initial in self.queued)
        calls = Counter(c.api for c in self.fake.calls)
        return fired + sum(1 for api, nth in self.closes if calls[api] >= nth)


def _handed_back(source: str, delivery: Delivery, record_ids: list[str | None]) -> list[bool]:
    if source in ("eventbridge", "direct"):
        return [delivery.raised is not None]
    return [rid in delivery.redelivered_ids for rid in record_ids]


def test_soak(capsys: pytest.CaptureFixture[str]) -> None:
    totals: Counter[str] = Counter()

    @SOAK
    @given(data=st.data())
    def one_world(data: st.DataObject) -> None:
        # GIVEN a fresh world with random faults queued in the fake service
        soak = Soak()
        for _ in range(data.draw(st.integers(2, 8))):
            soak.inject(data)
        deliveries: dict[str, list[Delivery]] = {}
        handed_back: dict[str, list[bool]] = {}
        # WHEN messages of mixed sources are delivered, redelivered when handed back, and sometimes duplicated
        for _ in range(data.draw(st.integers(8, 14))):
            source = data.draw(st.sampled_from(SOURCES))
            soak.totals[f"source:{source}"] += 1
            size = data.draw(st.integers(1, 6)) if source in ("sqs", "fifo") else 1
            bodies = [soak.new_task(data.draw(st.sampled_from(BEHAVIOURS)), i) for i in range(size)]
            tokens = [b["TaskToken"] for b in bodies]
            if source == "activity":
                start = len(soak.fake.calls)
                body = {"n": 0}
                result = soak.worker.run_one({"taskToken": tokens[0], "input": json.dumps(body)})
                delivery = Delivery(result.status, None, list(soak.fake.calls[start:]))
                deliveries[tokens[0]] = [delivery]
                handed_back[tokens[0]] = [result.status.redeliver]  # left to the task's own timeout
                soak.totals["deliveries"] += 1
                continue
            event, record_ids = build_event(source, bodies)  # type: ignore[arg-type]
            duplicate = data.draw(st.integers(0, 9)) == 0
            for _receive in range(MAX_RECEIVES):
                delivery = invoke(soak.fake, soak.handler, event)
                soak.totals["deliveries"] += 1
                back = _handed_back(source, delivery, record_ids)
                for token, flag in zip(tokens, back, strict=True):
                    deliveries.setdefault(token, []).append(delivery)
                    handed_back.setdefault(token, []).append(flag)
                if duplicate and not any(back):
                    duplicate = False
                    soak.totals["duplicates"] += 1
                    continue  # at-least-once: the same message once more, although it was acknowledged
                if not any(back):
                    break
                soak.totals["redeliveries"] += 1
                if source in ("sqs", "fifo"):  # SQS redelivers only the records handed back
                    kept = [r for r in event["Records"] if r["messageId"] in delivery.redelivered_ids]
                    event = {"Records": kept}
                    pairs = [(t, i) for t, i in zip(tokens, record_ids, strict=True) if i in delivery.redelivered_ids]
                    tokens, record_ids = [p[0] for p in pairs], [p[1] for p in pairs]
            # THEN (checked below for every task) the invariant holds
        for token, its in deliveries.items():
            context = (
                f"behaviour={soak.behaviour[token]} handed_back={handed_back[token]} "
                f"calls={[(c.api, c.result) for c in soak.fake.calls_for(token)]}"
            )
            try:
                end = check_task_invariant(soak.fake, token, its, handed_back[token])
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {context}") from None
            behaviour = soak.behaviour[token]
            outcome = soak.fake.outcome(token)
            if end == "success":
                assert behaviour in ("return", "slow"), f"{behaviour} task succeeded"
            if end == "failure":
                assert outcome is not None
                assert outcome[1] in FAILURE_ERRORS[behaviour], f"{behaviour} failed with {outcome[1]}"
            soak.totals[f"end:{end}"] += 1
        soak.totals["faults fired"] += soak.faults_fired()
        totals.update(soak.totals)

    one_world()

    counts = ", ".join(f"{k}={v}" for k, v in sorted(totals.items()))
    with capsys.disabled():
        print(f"\nsoak: {counts}")
    assert totals["tasks"] >= 1000
    assert totals["duplicates"] > 0
    assert totals["faults fired"] > 0
    ends = {k for k in totals if k.startswith("end:")}
    assert ends == {"end:success", "end:failure", "end:closed", "end:redelivered"}  # every kind of end occurred
    assert sum(totals[k] for k in ends) == totals["tasks"]
