"""Deliver callbacks: to Step Functions (SendTask*) or to Lambda durable functions (SendDurableExecutionCallback*).

What differs between the two backends (calls, codes, limits, failure shape) lives in :mod:`callback_kit.task.answers`;
everything here is written once for both. Each answer from Step Functions falls in one of four classes (see
``AWS_FACTS``; the durable API's codes map onto the same classes, see :mod:`callback_kit.task.answers`):

* **transient** (throttling, 5xx, connection and read errors, ``KmsThrottlingException``): retried with
  exponential backoff and full jitter, within the attempt budget and any deadline;
* **closed** (``TaskTimedOut``, ``TaskDoesNotExist``): the task is already over (timed out, stopped, or answered
  before). Logged, not raised, not redelivered: :attr:`Delivery.ALREADY_CLOSED`;
* **not a token** (``InvalidToken``): the string is not a token Step Functions issued (quoted, URL-encoded,
  truncated, or the wrong field). The real task still waits, so this is never taken for "closed": logged at ERROR
  and raised as :class:`~callback_kit.exceptions.InvalidTokenError`, so that the message goes back and ends in the DLQ;
* **rejected** (``InvalidOutput``, ``ValidationException``): the request itself is wrong; a success falls back to
  a failure callback (``CallbackKit.OutputRejected``) so that the task is still answered;
* anything else, or a transient error that outlasts the budget: :class:`CallbackDeliveryError`, so that the
  message that carried the token is redelivered and, in the end, reaches a DLQ.

Under a deadline (the Lambda's), no attempt starts without time left, every attempt, the first included, is made
with a timeout that ends before the deadline (:func:`callback_kit.task.timeouts.bounded`), and no retry waits past it:
nothing of a completion outlives the handler that made it.

Retries live here rather than in botocore's retry modes because ``KmsThrottlingException`` is not in botocore's
throttle list, because a retried success that comes back ``TaskTimedOut`` is a success, and because tests inject
the sleep. The default client therefore turns botocore's own retries off, so the two never multiply.
"""

from __future__ import annotations

import enum
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callback_kit.exceptions import (
    ERROR_OUTPUT_REJECTED,
    CallbackDeliveryError,
    InvalidTokenError,
)
from callback_kit.logs import fingerprint, get_logger, lazy_logger, mask_token
from callback_kit.observe.tracing import call_span
from callback_kit.outcome import Failure, Outcome, Success, encode_output, failure, truncate_text
from callback_kit.task import clients
from callback_kit.task.answers import Answers, Kind, answers_for
from callback_kit.task.classify import THROTTLE_CODES, error_code, is_transient, may_have_landed
from callback_kit.task.ratelimit import RateLimiter, Ticket, limiter_for
from callback_kit.task.timeouts import MIN_TIMEOUT, bounded

if TYPE_CHECKING:
    from callback_kit.observe.metrics import MetricsRecorder

__all__ = ["Completer", "Deadline", "Delivery", "RetryPolicy", "resolve_deadline"]


class Delivery(enum.Enum):
    """What became of a completion call."""

    #: Step Functions accepted the callback.
    DELIVERED = "delivered"
    #: The task was already closed (timed out, stopped or answered): nothing more can be done for it.
    ALREADY_CLOSED = "already_closed"


@dataclass(frozen=True)
class RetryPolicy:
    """How completion calls are retried on transient errors: exponential backoff with full jitter.

    Attempt ``n`` (from 0) waits a random time up to ``min(max_delay, base_delay * 2**n)``. A call is given
    ``max_attempts`` attempts for faults (5xx, lost connections). Throttles are the quota speaking rather than a
    fault: under a deadline they never use up attempts, and the call keeps its turn at the process-wide rate
    limiter (:mod:`callback_kit.task.ratelimit`) until the deadline leaves no room for another; without a deadline
    (a command line, an activity task without a time limit) they have their own budget,
    ``max_throttled_attempts``. Giving up earlier would hand the message back to run the whole task again into
    the same quota. No retry starts past a deadline.

    Example:
        >>> policy = RetryPolicy(max_attempts=3, sleep=lambda s: None)
        >>> policy.delay(10) <= policy.max_delay
        True
    """

    max_attempts: int = 6
    max_throttled_attempts: int = 18
    base_delay: float = 0.1
    max_delay: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random
    clock: Callable[[], float] = time.monotonic

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retrying after failed attempt number ``attempt`` (0-based)."""
        return float(self.random() * min(self.max_delay, self.base_delay * (2**attempt)))


@dataclass
class Completer:
    """Sends callbacks for tokens and durable callback ids, with the retry and error rules of this module.

    Args:
        client: a boto3 ``stepfunctions`` client (or a fake with the same methods); by default one shared,
            lazily built client (see :func:`default_client`).
        lambda_client: what durable callbacks (``kind="durable"``) are answered with: a boto3 ``lambda`` client or
            any object with its three ``send_durable_execution_callback_*`` methods; by default one shared, lazily
            built client (:func:`callback_kit.task.clients.default_lambda_client`).
        policy: the retry policy.
        closed_is_expected: log a task found already closed at INFO rather than WARNING. For a caller that
            answers after someone else normally has (the ECS reaper, after a container that answered and exited),
            where "already closed" is the usual end and a warning for it would only be noise.
        observer: counts heartbeats and throttled attempts for ``metrics=`` (``None``: nothing counted).

    Example:
        >>> from callback_kit.testing import FakeStepFunctions
        >>> fake = FakeStepFunctions()
        >>> token = fake.open_task()
        >>> Completer(fake).complete(token, Success('{"ok": true}'))
        <Delivery.DELIVERED: 'delivered'>
    """

    client: Any = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    closed_is_expected: bool = False
    observer: MetricsRecorder | None = None
    lambda_client: Any = None

    def resolved_client(self, kind: Kind = "stepfunctions") -> Any:
        """The client ``kind``'s calls are made with: the injected one, else the process-wide default (built on
        first use)."""
        if kind == "durable":
            return self.lambda_client if self.lambda_client is not None else clients.default_lambda_client()
        return self.client if self.client is not None else clients.default_client()

    def encode(self, value: Any, kind: Kind = "stepfunctions") -> Success | Failure:
        """``value`` as the output of a success for ``kind``, or the failure that says why it cannot be one: within
        the backend's limit as the client that would send it sees it (:meth:`Answers.output_limit`).

        Example:
            >>> from callback_kit.testing import FakeStepFunctions
            >>> Completer(FakeStepFunctions()).encode({"ok": True})
            Success(output='{"ok":true}')
        """
        answers = answers_for(kind)
        limit = answers.output_limit(self.resolved_client(kind))
        return encode_output(value, max_bytes=limit, service=answers.service)

    def complete(
        self, token: str, outcome: Outcome, *, deadline: Deadline = None, kind: Kind = "stepfunctions"
    ) -> Delivery:
        """Send ``outcome`` for ``token`` (a durable callback id with ``kind="durable"``); fall back to a failure
        callback if the service rejects the output.

        Args:
            deadline: a ``policy.clock`` time after which no retry is started (the Lambda's end, say), or a
                function that says it at each look: a deadline that comes while the call waits (an activity
                worker's stop) then bounds the rest of its wait.

        Raises:
            CallbackDeliveryError: the callback could not be delivered; the message must be redelivered.
        """
        answers = answers_for(kind)
        if isinstance(outcome, Success):
            try:
                params = answers.success_params(token, outcome.output)
                return self._call(answers, answers.success_api, token, deadline, params)
            except _Rejected as exc:
                get_logger().warning(
                    f"{answers.service} rejected the output; sending a failure instead",
                    extra={"token_fp": fingerprint(token), "code": exc.code},
                )
                outcome = failure(ERROR_OUTPUT_REJECTED, f"{answers.service} rejected the output: {exc.message}")
        api = answers.failure_api
        try:
            return self._call(answers, api, token, deadline, answers.failure_params(token, outcome))
        except _Rejected as exc:
            # Our own limits should make this impossible; answer with the plainest failure rather than not at all.
            get_logger().error(
                f"{answers.service} rejected a failure callback; retrying with a minimal one",
                extra={"token_fp": fingerprint(token), "code": exc.code},
            )
            plain = Failure(ERROR_OUTPUT_REJECTED, truncate_text(exc.message, 1000))
            try:
                return self._call(answers, api, token, deadline, answers.failure_params(token, plain))
            except _Rejected as again:
                raise CallbackDeliveryError(again.message, api=api, code=again.code) from again

    def heartbeat_sending(self) -> None:
        """Called just before each heartbeat request goes out (not for beats the rate limiter skips); a hook."""

    def heartbeat(
        self,
        token: str,
        *,
        within: float = 0.0,
        wanted: Callable[[], bool] | None = None,
        kind: Kind = "stepfunctions",
    ) -> bool:
        """Send one heartbeat, ahead of any completion waiting for the rate limiter. Never raises.

        Args:
            within: seconds a throttled beat may be retried for (the runner gives half the interval, so that a
                beat lands within 1.5 intervals of the one before it); other errors are not retried, since the
                next beat is never far.

        Returns:
            False when the service says the task (callback) is closed, True otherwise (including on transient
            errors, which are logged: a missed beat is covered by the next one).
        """
        answers = answers_for(kind)
        client = self.resolved_client(kind)
        limiter = limiter_for(client)
        policy = self.policy
        observer = self.observer
        give_up = policy.clock() + within
        while True:
            # A heartbeat never queues behind completions: it takes the next token (a missed beat fails a
            # healthy task, a late completion only delays). If even that would come too late, it goes at once.
            ticket = limiter.reserve(front=True)
            if ticket is not None and ticket.wait and policy.clock() + ticket.wait <= give_up:
                policy.sleep(ticket.wait)
                if wanted is not None and not wanted():
                    return True  # its task began completing while this beat waited: no beat may start now
            self.heartbeat_sending()
            try:
                with call_span(answers.heartbeat_api):
                    getattr(client, answers.method(answers.heartbeat_api))(**answers.heartbeat_params(token))
                limiter.observe(None, ticket)
                if observer is not None:
                    observer.heartbeat(True)
                return True
            except Exception as exc:
                limiter.observe(exc, ticket)
                code, what = error_code(exc), mask_token(repr(exc), token)
                if code in THROTTLE_CODES:
                    pause = 0.0 if limiter.enabled else policy.delay(0)
                    if policy.clock() + max(pause, limiter.token_time()) < give_up:
                        if pause:
                            policy.sleep(pause)
                        if wanted is None or wanted():
                            continue
            break
        if observer is not None:
            observer.heartbeat(False)
        if code in answers.closed_codes:
            get_logger().info("heartbeat says the task is closed", extra={"token_fp": fingerprint(token), "code": code})
            return False
        if code in answers.not_issued_codes:
            # Not a token (callback id) the service issued: the real task is still open. The completion will say
            # so too and hand the message back; a heartbeat must not take it for a closed task.
            get_logger().error(
                f"heartbeat: {answers.service} says this is not a {_noun(answers)} it issued",
                extra={"token_fp": fingerprint(token), "code": code},
            )
            return True
        get_logger().warning(
            "heartbeat failed; will beat again", extra={"token_fp": fingerprint(token), "code": code or what}
        )
        return True

    def beat(self, token: str, *, kind: Kind = "stepfunctions") -> Delivery:
        """One heartbeat, retried and classified as an answer is (``ck.send_heartbeat``); unlike :meth:`heartbeat`,
        a beat that cannot be delivered raises.

        Raises:
            CallbackDeliveryError: the service could not be reached, or refused the call.
        """
        answers = answers_for(kind)
        try:
            return self._call(answers, answers.heartbeat_api, token, None, answers.heartbeat_params(token))
        except _Rejected as exc:
            raise CallbackDeliveryError(exc.message, api=answers.heartbeat_api, code=exc.code) from exc

    def _turn(self, limiter: RateLimiter, deadline: Deadline, *, front: bool) -> Ticket | None:
        """Wait for this call's turn at the shared limiter, never past ``deadline`` (less a call's minimum time).

        ``front``: a throttled call asking again keeps the turn it had, at the head of the queue.

        Returns:
            The ticket to send on, or ``None``: its turn does not come before the deadline.
        """
        policy = self.policy
        limit = resolve_deadline(deadline)
        ticket = limiter.reserve(None if limit is None else limit - policy.clock() - MIN_TIMEOUT, front=front)
        wait = 0.0 if ticket is None else ticket.wait
        while wait > 0:
            limit = resolve_deadline(deadline)
            if limit is not None and policy.clock() + wait + MIN_TIMEOUT > limit:
                return None  # a cut, or a deadline that came meanwhile, moved its turn past the deadline
            # Sleep half the wait and ask again: the rate may rise while this call waits, and unless it doubles
            # meanwhile the call is never late for its turn (a late turn is a burst the service may refuse).
            policy.sleep(wait / 2 if wait > limiter.token_time() else wait)
            wait = limiter.wait(ticket)  # type: ignore[arg-type]
        return ticket

    def _call(self, answers: Answers, api: str, token: str, until: Deadline, params: dict[str, Any]) -> Delivery:
        policy = self.policy
        log = lazy_logger()  # powertools is imported only if a line is logged: a cold start's cost
        landed = False  # whether an earlier attempt may have reached the service
        client = self.resolved_client(answers.kind)
        limiter = limiter_for(client)  # one limiter shared by every call to this endpoint
        failed = throttled = 0  # failed attempts, and throttled ones (see RetryPolicy)
        front = False  # whether the last attempt was throttled: it asks again at the head of the queue
        for attempt in itertools.count():
            ticket = self._turn(limiter, until, front=front)
            deadline = resolve_deadline(until)  # read again at each attempt: it may have come while this call waited
            timeout = None
            if deadline is not None:
                timeout = deadline - policy.clock()
                if timeout < MIN_TIMEOUT:
                    log.error(
                        f"{api}: no time left before the deadline",
                        extra={"token_fp": fingerprint(token), "attempt": attempt},
                    )
                    raise CallbackDeliveryError("no time left before the deadline", api=api, code="Deadline")
            method = getattr(bounded(client, timeout), answers.method(api))
            try:
                with call_span(api):
                    method(**params)
            except Exception as exc:
                limiter.observe(exc, ticket)
                code = error_code(exc)
                if code in THROTTLE_CODES and self.observer is not None:
                    self.observer.throttled()
                if code in answers.closed_codes:
                    if landed and api != answers.heartbeat_api:
                        # An earlier attempt may have landed before its response was lost: that answer stands.
                        log.info(
                            f"{api}: task closed on retry; an earlier attempt was delivered",
                            extra={"token_fp": fingerprint(token)},
                        )
                        return Delivery.DELIVERED
                    report = log.info if self.closed_is_expected else log.warning
                    report(f"{api}: the task is already closed", extra={"token_fp": fingerprint(token), "code": code})
                    return Delivery.ALREADY_CLOSED
                if code in answers.not_issued_codes:
                    log.error(
                        f"{api}: {answers.service} says this is not a {_noun(answers)} it issued (quoted, "
                        "URL-encoded, truncated, or taken from the wrong field?); what it belongs to still waits",
                        extra={"token_fp": fingerprint(token), "code": code},
                    )
                    raise InvalidTokenError(mask_token(str(exc), token), api=api, code=code) from exc
                if code in answers.rejected_codes:
                    raise _Rejected(code or "", mask_token(str(exc), token)) from exc
                if code in answers.config_fault_codes:
                    log.error(f"{api}: KMS configuration fault", extra={"token_fp": fingerprint(token), "code": code})
                    raise CallbackDeliveryError(mask_token(str(exc), token), api=api, code=code) from exc
                if not (is_transient(exc) or code in answers.transient_codes):
                    log.error(
                        f"{api}: callback failed",
                        extra={"token_fp": fingerprint(token), "code": code or mask_token(repr(exc), token)},
                    )
                    raise CallbackDeliveryError(mask_token(str(exc), token), api=api, code=code) from exc
                landed = landed or may_have_landed(exc)
                if code in THROTTLE_CODES:  # TooManyRequestsException, the durable API's throttle, is one
                    # A throttle is the quota speaking, not a fault of this call: under a deadline it keeps its
                    # turn until the deadline leaves no room. A pacing limiter says when to go again; else back off.
                    throttled += 1
                    front = limiter.enabled
                    pause = 0.0 if limiter.enabled else policy.delay(throttled - 1)
                    if ticket is None:  # its turn would not come before the deadline, and the service said no
                        pause = math.inf
                else:
                    failed += 1
                    front, pause = False, policy.delay(failed - 1)
                last = failed >= policy.max_attempts or (
                    deadline is None and throttled >= policy.max_throttled_attempts
                )
                if last or (deadline is not None and policy.clock() + pause + MIN_TIMEOUT > deadline):
                    log.error(
                        f"{api}: giving up after {attempt + 1} attempts",
                        extra={"token_fp": fingerprint(token), "code": code or mask_token(repr(exc), token)},
                    )
                    raise CallbackDeliveryError(mask_token(str(exc), token), api=api, code=code) from exc
                # A throttle is the quota's normal pacing (a storm makes thousands): INFO. A fault: WARNING.
                (log.info if code in THROTTLE_CODES else log.warning)(
                    f"{api}: transient error, retrying",
                    extra={
                        "token_fp": fingerprint(token),
                        "code": code or mask_token(repr(exc), token),
                        "attempt": attempt + 1,
                    },
                )
                if pause:
                    policy.sleep(pause)
            else:
                limiter.observe(None, ticket)
                return Delivery.DELIVERED
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


#: When a completion's calls must be over: a ``policy.clock`` time, a function that says it (``None``: no bound yet),
#: or ``None``.
Deadline = float | Callable[[], float | None] | None


def resolve_deadline(deadline: Deadline) -> float | None:
    """The time ``deadline`` says now: itself, or what it returns when it is a function.

    Example:
        >>> resolve_deadline(lambda: 12.5), resolve_deadline(None)
        (12.5, None)
    """
    return deadline() if callable(deadline) else deadline


class _Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _noun(answers: Answers) -> str:
    return "durable callback id" if answers.kind == "durable" else "task token"
