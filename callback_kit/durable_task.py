"""A Lambda durable function as the worker of a Step Functions ``.waitForTaskToken`` task.

A state machine may invoke a durable function with ``arn:aws:states:::lambda:invoke.waitForTaskToken`` and the
token in the payload (``"Payload": {"TaskToken.$": "$$.Task.Token", ...}``). The function may then wait for days
(``context.wait``, ``context.wait_for_callback``), and its body is *replayed* from the top on every resume: a
SendTaskSuccess written at the end of the body would be sent again by every replay that reaches it, and one that
a replay reaches by another path (a step that failed this time) would answer with the wrong outcome.

:func:`durable_task_handler` answers the task once, when the durable execution ends:

* the token is taken out of the payload (found as :mod:`callback_kit.sources.tokens` finds it) before the function
  sees the payload, and is only ever logged as its fingerprint;
* the function's return value becomes SendTaskSuccess, an uncaught exception SendTaskFailure (error name and cause
  as :func:`callback_kit.outcome.from_exception` maps them, ``error_map`` included);
* the answer is sent inside one checkpointed step, the last operation of the execution. A replay finds the step's
  checkpoint and sends nothing.

Why the answer step is safe to run more than once. The step runs at least once per attempt (the SDK's default
semantics): if the Lambda dies after the call and before the checkpoint, the next invocation sends the same answer
again. Step Functions takes only the first answer of a token and says ``TaskTimedOut`` to any later one, which
:class:`~callback_kit.task.completion.Completer` reads as "already closed" and acknowledges: no second answer can land.
The same holds for the step's retries (:func:`answer_delay`): a call that failed transiently (throttled, 5xx, a lost
connection, the Lambda's time running out) is retried by the SDK in a later invocation, which costs nothing while
the function is suspended. Only a transient failure is retried: ``InvalidToken`` (not a token Step Functions issued)
or a KMS configuration fault fails the step, and with it the durable execution, loudly.

The SDK's own errors (:class:`UnrecoverableError`: a broken checkpoint, non-deterministic replay) are not answers
about the task: they propagate untouched, so that the SDK retries the invocation (which replays and answers later)
or fails the execution. A task left so is closed by its ``TimeoutSeconds``: declare one.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from callback_kit.exceptions import (
    ERROR_MALFORMED_MESSAGE,
    CallbackDeliveryError,
    InvalidOutputError,
    InvalidTokenError,
    MissingTokenError,
    validate_error_name,
)
from callback_kit.logs import fingerprint, lazy_logger
from callback_kit.options import DEFAULT_DEADLINE_MARGIN
from callback_kit.outcome import ErrorMap, Failure, Outcome, Success, encode_output, failure, from_exception
from callback_kit.sources.depth import MessageTooDeepError
from callback_kit.sources.tokens import check_token, find_token_path, get_path, without_token
from callback_kit.task.classify import CONFIG_FAULT_CODES, THROTTLE_CODES, is_transient
from callback_kit.task.completion import Completer, RetryPolicy

if TYPE_CHECKING:
    from aws_durable_execution_sdk_python import DurableContext, StepContext
    from aws_durable_execution_sdk_python.retries import RetryDecision

__all__ = [
    "ANSWER_STEP_NAME",
    "ANSWER_STEP_SUB_TYPE",
    "MAX_ANSWER_ATTEMPTS",
    "answer_delay",
    "answer_retry",
    "durable_task_handler",
]

R = TypeVar("R")
DurableFn = Callable[[Any, "DurableContext"], R]

#: The name of the step that answers the task, as the execution's history shows it.
ANSWER_STEP_NAME = "callback-kit: answer the task"
#: Its subtype, so that history readers and plugins can pick it out without parsing names.
ANSWER_STEP_SUB_TYPE = "CallbackKitAnswer"
#: Attempts the answer step is given for transient failures. Between attempts the function is suspended (nothing
#: runs, nothing is billed) for 5 s, then twice as long each time up to 5 minutes: about 35 minutes in all, longer
#: than any throttling burst or regional blip a retry can outlast.
MAX_ANSWER_ATTEMPTS = 12
_FIRST_DELAY = 5.0
_MAX_DELAY = 300.0


@overload
def durable_task_handler(fn: DurableFn[R], /) -> DurableFn[Any]: ...


@overload
def durable_task_handler(
    fn: None = None,
    /,
    *,
    token_path: str | None = None,
    client: Any = None,
    error_map: ErrorMap | None = None,
    retry: RetryPolicy | None = None,
) -> Callable[[DurableFn[R]], DurableFn[Any]]: ...


def durable_task_handler(
    fn: DurableFn[R] | None = None,
    /,
    *,
    token_path: str | None = None,
    client: Any = None,
    error_map: ErrorMap | None = None,
    retry: RetryPolicy | None = None,
) -> DurableFn[Any] | Callable[[DurableFn[R]], DurableFn[Any]]:
    """Make a durable handler answer the Step Functions task that invoked it, once, when its execution ends.

    Put it *under* the SDK's ``@durable_execution``: the SDK replays, this answers. The function is called as the
    SDK calls a durable handler, ``fn(payload, context)``, with the payload the state machine sent less the task
    token (every copy of it), and may use every durable operation (steps, waits, callbacks).

    Args:
        fn: the durable handler: ``(payload, DurableContext) -> result``.
        token_path: where the token is, dotted (``"meta.cb"``); by default it is looked for as the Lambda decorator
            looks for it (``TaskToken`` in any case and with any ``_``, ``context.Task.Token``, ``token``...).
        client: a ``stepfunctions`` client (or a fake); by default callback-kit's own, built on first use.
        error_map: exception class -> error name, as for :func:`~callback_kit.callback_handler`. A failed
            ``context.step`` reaches the handler as the SDK's ``StepError``: map it to name it.
        retry: how the answer is retried within one invocation (:class:`~callback_kit.task.completion.RetryPolicy`);
            what outlasts it is retried by the answer step itself, in a later invocation (:func:`answer_delay`).

    Returns:
        The handler for ``@durable_execution``. The durable execution's result is the output sent (the return
        value as JSON); on a failure it fails with the function's exception.

    Raises:
        MissingTokenError: (at run time) the payload holds no usable task token: nothing can be answered.

    Example:
        >>> import callback_kit as ck
        >>> from aws_durable_execution_sdk_python import DurableContext, durable_execution  # doctest: +SKIP
        >>> from aws_durable_execution_sdk_python.config import Duration  # doctest: +SKIP
        >>> @durable_execution                                    # doctest: +SKIP
        ... @ck.durable_task_handler
        ... def handler(order: dict, context: DurableContext) -> dict:
        ...     context.wait(Duration.from_hours(24))            # replayed on resume, answered once at the end
        ...     approved = context.wait_for_callback(ask_a_human, name="approval")
        ...     return {"approved": approved}                    # -> SendTaskSuccess, after the last replay
    """
    for name in (error_map or {}).values():
        validate_error_name(name)

    def decorate(function: DurableFn[R]) -> DurableFn[Any]:
        if not callable(function):
            raise TypeError(f"durable_task_handler decorates a function, not {type(function).__name__}")
        _require_sdk()

        @functools.wraps(function)
        def handler(event: Any, context: DurableContext) -> Any:
            if not callable(getattr(context, "step", None)):
                raise TypeError(
                    "durable_task_handler must be called with a DurableContext: put @durable_execution above "
                    "@ck.durable_task_handler, not below it"
                )
            token, path = _find_token(event, token_path)
            return _run(function, event, token, path, context, Completer(client, retry or RetryPolicy()), error_map)

        return handler

    return decorate if fn is None else decorate(fn)


def _run(
    function: DurableFn[R],
    event: Any,
    token: str,
    path: tuple[str, ...],
    context: DurableContext,
    completer: Completer,
    error_map: ErrorMap | None,
) -> Any:
    from aws_durable_execution_sdk_python.exceptions import UnrecoverableError

    try:
        payload = without_token(event, path, token)
    except MessageTooDeepError as exc:
        _answer(context, token, failure(ERROR_MALFORMED_MESSAGE, str(exc)), completer)
        raise
    try:
        result = function(payload, context)
    except UnrecoverableError:
        # The SDK's own: it will replay this invocation (which answers then) or fail the execution. No step can be
        # checkpointed now, and an answer sent outside a step could be sent again by the replay.
        raise
    except Exception as exc:
        # SuspendExecution (a wait, a retry) is a BaseException, never caught here: only the function's own end is.
        _answer(context, token, from_exception(exc, error_map), completer)
        raise
    outcome = encode_output(result)
    _answer(context, token, outcome, completer)
    if isinstance(outcome, Failure):
        # Sent as a failure of the task: the execution fails too, so that the two never disagree.
        raise InvalidOutputError(outcome.cause, error=outcome.error)
    # The output as sent, rather than the value: the SDK writes the result with json.dumps, which a pydantic model
    # or a dataclass would fail *after* the task was answered with success.
    return json.loads(outcome.output)


def _find_token(event: Any, token_path: str | None) -> tuple[str, tuple[str, ...]]:
    """The task token and where it sits in the payload."""
    path = find_token_path(event, token_path)
    token, problem = check_token(get_path(event, path) if path else None)
    if token is None or path is None:
        where = f" at {token_path!r}" if token_path else ""
        raise MissingTokenError(f"{problem}{where}: a durable task handler needs the task token in its payload")
    return token, path


def _answer(context: DurableContext, token: str, outcome: Outcome, completer: Completer) -> None:
    """Send ``outcome`` from one checkpointed step: the first run sends it, every replay reads the checkpoint."""
    from aws_durable_execution_sdk_python.config import StepConfig, StepSemantics

    arn = getattr(getattr(context, "execution_context", None), "durable_execution_arn", None)

    def send(step: StepContext) -> str:
        delivery = completer.complete(token, outcome, deadline=_deadline(context, completer))
        lazy_logger().info(
            "answered the task from a durable execution",
            extra={
                "token_fp": fingerprint(token),
                "delivery": delivery.value,
                "outcome": "success" if isinstance(outcome, Success) else "failure",
                "durable_execution_arn": arn,
                "attempt": step.attempt,
            },
        )
        # Only the delivery is checkpointed, never the token.
        return delivery.value

    config = StepConfig(
        retry_strategy=answer_retry,
        # At least once per attempt, not at most once: a repeated answer is acknowledged as TaskTimedOut, while an
        # attempt interrupted under at-most-once semantics would count as failed without knowing whether it landed.
        step_semantics=StepSemantics.AT_LEAST_ONCE_PER_RETRY,
        sub_type=ANSWER_STEP_SUB_TYPE,
    )
    context.step(send, name=ANSWER_STEP_NAME, config=config)


def _deadline(context: DurableContext, completer: Completer) -> float | None:
    """When the answer's in-invocation retries must stop: the Lambda's end, less a margin (``None``: unknown)."""
    remaining = getattr(getattr(context, "lambda_context", None), "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    try:
        millis = float(remaining())
    except Exception:  # a stand-in context without a clock
        return None
    return completer.policy.clock() + millis / 1000 - DEFAULT_DEADLINE_MARGIN


def answer_retry(error: Exception, attempts_made: int) -> RetryDecision:
    """The answer step's retry strategy (the SDK's ``StepConfig.retry_strategy``): :func:`answer_delay` decides.

    Example:
        >>> answer_retry(ValueError("bug"), 1).should_retry  # doctest: +SKIP
        False
    """
    from aws_durable_execution_sdk_python.config import Duration
    from aws_durable_execution_sdk_python.retries import RetryDecision

    delay = answer_delay(error, attempts_made)
    return RetryDecision.no_retry() if delay is None else RetryDecision.retry(Duration.from_seconds(delay))


def answer_delay(error: Exception, attempts_made: int, *, jitter: Callable[[], float] = random.random) -> int | None:
    """Seconds before the answer step's next attempt, or ``None``: transient failures again later, others never.

    Retried: a delivery that ran out of attempts or of the Lambda's time on throttles, 5xx answers or lost
    connections. Not retried: ``InvalidToken`` (the task waits until its timeout; the execution fails and says so),
    KMS configuration faults, and errors that are not about delivery. The wait is half fixed, half jitter (never
    sooner than half its ceiling, so that a throttled account is not hit again at once), the ceiling doubling from
    5 s to 5 minutes.

    Example:
        >>> from callback_kit.exceptions import CallbackDeliveryError
        >>> late = CallbackDeliveryError("no time left before the deadline", api="SendTaskSuccess", code="Deadline")
        >>> [answer_delay(late, n, jitter=lambda: 1.0) for n in (1, 2, 7, MAX_ANSWER_ATTEMPTS)]
        [5, 10, 300, None]
        >>> answer_delay(ValueError("a bug, not a delivery"), 1) is None
        True
    """
    if attempts_made >= MAX_ANSWER_ATTEMPTS or not _transient_delivery(error):
        return None
    ceiling = min(_MAX_DELAY, _FIRST_DELAY * 2.0 ** (attempts_made - 1))
    return max(1, round(ceiling / 2 + jitter() * ceiling / 2))


def _transient_delivery(error: Exception) -> bool:
    if not isinstance(error, CallbackDeliveryError) or isinstance(error, InvalidTokenError):
        return False
    if error.code == "Deadline" or error.code in THROTTLE_CODES:
        return True
    if error.code in CONFIG_FAULT_CODES:
        return False
    cause = error.__cause__
    return cause is not None and is_transient(cause)


def _require_sdk() -> None:
    try:
        import aws_durable_execution_sdk_python  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the extra is installed wherever the tests run
        raise ImportError(
            "durable_task_handler needs the Lambda durable execution SDK: pip install 'callback-kit[durable]'"
        ) from exc
