"""The stranded-token reaper: fail the ``ecs:runTask.waitForTaskToken`` tasks whose container stopped unanswered.

``ecs:runTask.waitForTaskToken`` hands the token to a container in an environment override, and only that
container can answer. ``callback-kit run`` answers for a container that runs; nothing answers for one that never
starts (``CannotPullContainerError``, ``ResourceInitializationError``, no capacity), is stopped before its entry
point runs, or is killed with SIGKILL (out of memory). Its task waits until ``TimeoutSeconds``, or a year without
one, and the ``Ecs.*`` errors a ``Retry`` might name are raised only for ``.sync``, never for a token task.

ECS reports every task's end to EventBridge ("ECS Task State Change", ``lastStatus`` ``STOPPED``), and the event
carries the RunTask overrides, token included. For such an event this module's handler:

* finds the token in ``detail.overrides.containerOverrides[].environment`` under ``token_env`` (``TASK_TOKEN``
  by default, as for ``callback-kit run --token-env``);
* sends SendTaskFailure ``CallbackKit.ContainerStopped``, whose cause names the ``stopCode``, the
  ``stoppedReason`` and each container's ``exitCode`` and ``reason`` (never the token), within Step Functions'
  limits, through :class:`~callback_kit.task.completion.Completer`: the same retries, deadline bounds and token
  fingerprints as every other answer;
* takes ``TaskTimedOut``/``TaskDoesNotExist`` for "the container answered before it stopped" (the usual end of a
  task that ran): logged at INFO, and the handler returns normally so that Lambda does not retry for nothing;
* ignores tasks that are not ``STOPPED`` and tasks without the variable (not callback tasks);
* raises when the answer could not be delivered (throttled past its retries, an ``InvalidToken``), so that
  Lambda's retries, then the function's on-failure destination, keep the event.

Wiring (template.yaml has it in full): an EventBridge rule on ``source: [aws.ecs]``, ``detail-type: [ECS Task
State Change]``, ``detail.lastStatus: [STOPPED]`` and the cluster, targeting a function whose handler is
``callback_kit.reaper.handler`` (or your module's ``make_handler(...)``), allowed ``states:SendTaskFailure``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from callback_kit.batch import invocation_deadline
from callback_kit.container import DEFAULT_TOKEN_ENV
from callback_kit.exceptions import (
    ERROR_CONTAINER_STOPPED,
    CallbackKitError,
    MalformedEventError,
    MissingTokenError,
)
from callback_kit.logs import fingerprint, get_logger, mask_token
from callback_kit.outcome import failure
from callback_kit.sources.tokens import check_token
from callback_kit.task.completion import Completer, Delivery, RetryPolicy

__all__ = [
    "DETAIL_TYPE",
    "ENV_TOKEN_ENV",
    "Reaped",
    "describe_stop",
    "handler",
    "make_handler",
    "reap",
    "task_tokens",
]

#: The ``detail-type`` of the events ECS sends to EventBridge when a task changes state.
DETAIL_TYPE = "ECS Task State Change"
#: The variable naming the container variable that holds the token, for the module-level :func:`handler`.
ENV_TOKEN_ENV = "CALLBACK_KIT_TOKEN_ENV"  # noqa: S105 - the name of a variable, not a secret
STOPPED = "STOPPED"

LambdaHandler = Callable[[Any, Any], dict[str, str]]


class Reaped(enum.Enum):
    """What the reaper did with one event; the handler returns ``{"result": value}``."""

    #: SendTaskFailure ``CallbackKit.ContainerStopped`` was delivered: the container had not answered.
    FAILED = "failed"
    #: Step Functions said the task was closed: the container answered before it stopped (or the task had timed
    #: out, or its execution was stopped). Nothing more to do.
    ALREADY_ANSWERED = "already_answered"
    #: The task is not ``STOPPED`` yet: its container may still answer.
    NOT_STOPPED = "not_stopped"
    #: No ``token_env`` variable in the task's overrides: not a callback task.
    NO_TOKEN = "no_token"  # noqa: S105 - a result, not a secret


def make_handler(
    client: Any = None, token_env: str = DEFAULT_TOKEN_ENV, *, retry: RetryPolicy | None = None
) -> LambdaHandler:
    """A Lambda handler ``(event, context)`` for EventBridge "ECS Task State Change" events.

    Args:
        client: a boto3 ``stepfunctions`` client; by default callback-kit's shared one (built on first use).
        token_env: the container variable the state machine puts the token in (``callback-kit run --token-env``).
        retry: the retry policy of the SendTaskFailure call (tests inject its ``sleep``).

    The deadline margin comes from ``$CALLBACK_KIT_DEADLINE_MARGIN`` (default 2 s), as for
    :func:`~callback_kit.callback_handler`: the answer is over before the Lambda must return.

    Example:
        >>> from callback_kit.testing import FakeStepFunctions
        >>> reaper = make_handler(client=FakeStepFunctions(), token_env="JOB_TOKEN")
        >>> reaper({"detail-type": "ECS Task State Change", "detail": {"lastStatus": "RUNNING"}}, None)
        {'result': 'not_stopped'}
    """
    from callback_kit.handler import HandlerOptions

    margin = HandlerOptions.resolve().deadline_margin  # a bad $CALLBACK_KIT_DEADLINE_MARGIN fails here, not later
    # A container that answered and then exited is the usual case: its "already closed" is no warning.
    completer = Completer(client, retry or RetryPolicy(), closed_is_expected=True)

    def reaper(event: Any, context: Any = None) -> dict[str, str]:
        deadline = invocation_deadline(context, margin, completer.policy.clock)
        result = reap(event, completer=completer, token_env=token_env, deadline=deadline)
        return {"result": result.value}

    return reaper


_configured: LambdaHandler | None = None


def handler(event: Any, context: Any) -> dict[str, str]:
    """The reaper configured by the environment: the Lambda entry point ``callback_kit.reaper.handler``.

    ``$CALLBACK_KIT_TOKEN_ENV`` names the container variable holding the token (default ``TASK_TOKEN``), and the
    usual AWS variables configure the client. Read at the first event, not at import.

    Example:
        >>> handler({"detail-type": "ECS Task State Change", "detail": {"lastStatus": "PENDING"}}, None)
        {'result': 'not_stopped'}
    """
    global _configured
    if _configured is None:
        _configured = make_handler(token_env=os.environ.get(ENV_TOKEN_ENV, "").strip() or DEFAULT_TOKEN_ENV)
    return _configured(event, context)


def reap(
    event: Any, *, completer: Completer, token_env: str = DEFAULT_TOKEN_ENV, deadline: float | None = None
) -> Reaped:
    """Fail the callback task of a stopped ECS task, unless it was answered: the function behind the handler.

    Args:
        event: an EventBridge "ECS Task State Change" event.
        completer: sends the failure (its client, retry policy and log level for closed tasks).
        token_env: the container variable holding the token.
        deadline: a ``completer.policy.clock`` time by which the call must be over (the Lambda's end).

    Example:
        >>> from callback_kit.testing import FakeStepFunctions
        >>> event = {"detail-type": "ECS Task State Change", "detail": {"lastStatus": "STOPPED"}}
        >>> reap(event, completer=Completer(FakeStepFunctions()))
        <Reaped.NO_TOKEN: 'no_token'>

    Raises:
        MalformedEventError: the event is not an ECS Task State Change (the rule sends the wrong events).
        MissingTokenError: the variable holds something that cannot be a task token (over 2,048 characters).
        CallbackDeliveryError: the failure could not be delivered (``InvalidTokenError`` included).
    """
    detail = _detail(event)
    where = {"task_arn": str(detail.get("taskArn", "")), "cluster_arn": str(detail.get("clusterArn", ""))}
    log = get_logger()
    if detail.get("lastStatus") != STOPPED:
        log.debug("ECS task not stopped: its container may still answer", extra=where)
        return Reaped.NOT_STOPPED
    tokens = task_tokens(detail, token_env)
    if not tokens:
        log.debug(f"stopped ECS task without ${token_env}: not a callback task", extra=where)
        return Reaped.NO_TOKEN
    outcome = failure(ERROR_CONTAINER_STOPPED, _masked(describe_stop(detail), tokens))
    deliveries: list[Delivery] = []
    errors: list[CallbackKitError] = []
    for raw in tokens:
        token, problem = check_token(raw)
        if token is None:
            log.error(f"${token_env} of a stopped ECS task is not a usable task token: {problem}", extra=where)
            errors.append(MissingTokenError(f"${token_env}: {problem}"))
            continue
        fields = {**where, "token_fp": fingerprint(token), "stop_code": str(detail.get("stopCode", ""))}
        try:
            delivery = completer.complete(token, outcome, deadline=deadline)
        except CallbackKitError as exc:  # logged by the completer; every token gets its try before raising
            errors.append(exc)
            continue
        deliveries.append(delivery)
        # INFO either way: a delivered failure is in the execution's history, where the state machine handles it.
        if delivery is Delivery.DELIVERED:
            log.info("ECS task stopped before its container answered; failed its task", extra=fields)
        else:
            log.info("ECS task stopped after its task was closed (answered, timed out or stopped)", extra=fields)
    if errors:
        raise errors[0]
    return Reaped.FAILED if Delivery.DELIVERED in deliveries else Reaped.ALREADY_ANSWERED


def task_tokens(detail: Mapping[str, Any], token_env: str = DEFAULT_TOKEN_ENV) -> list[str]:
    """The distinct values of ``token_env`` in a task's container overrides, in order (blank ones left out).

    Example:
        >>> env = [{"name": "MODE", "value": "full"}, {"name": "TASK_TOKEN", "value": " AQB-1 "}]
        >>> task_tokens({"overrides": {"containerOverrides": [{"name": "job", "environment": env}]}})
        ['AQB-1']
        >>> task_tokens({"overrides": {"containerOverrides": [{"name": "job"}]}})
        []
    """
    found: list[str] = []
    for container in _items(_mapping(detail.get("overrides")).get("containerOverrides")):
        for variable in _items(_mapping(container).get("environment")):
            variable = _mapping(variable)
            value = variable.get("value")
            token = value.strip() if isinstance(value, str) and variable.get("name") == token_env else ""
            if token and token not in found:
                found.append(token)
    return found


def describe_stop(detail: Mapping[str, Any]) -> str:
    """Why ECS stopped a task, for the failure's cause: stopCode, stoppedReason, each container's exit and reason.

    Example:
        >>> oom = {"name": "job", "exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}
        >>> print(describe_stop({"taskArn": "arn:aws:ecs:us-east-1:123456789012:task/jobs/0f3a", "containers": [oom],
        ...     "stopCode": "EssentialContainerExited", "stoppedReason": "Essential container in task exited"}))
        the ECS task stopped before its container answered the task: stopCode EssentialContainerExited;
        stoppedReason: Essential container in task exited; container job: exitCode 137, reason: OutOfMemoryError:
        Container killed due to memory usage; task arn:aws:ecs:us-east-1:123456789012:task/jobs/0f3a
    """
    parts = [
        f"the ECS task stopped before its container answered the task: stopCode {detail.get('stopCode') or 'none'}",
        f"stoppedReason: {detail.get('stoppedReason') or 'none'}",
    ]
    for container in _items(detail.get("containers")):
        container = _mapping(container)
        exit_code = container.get("exitCode")
        text = f"container {container.get('name') or '?'}: "
        text += f"exitCode {exit_code}" if exit_code is not None else "no exitCode (it never ran)"
        if container.get("reason"):
            text += f", reason: {container['reason']}"
        parts.append(text)
    if detail.get("taskArn"):
        parts.append(f"task {detail['taskArn']}")
    return "; ".join(parts)


def _detail(event: Any) -> Mapping[str, Any]:
    if not isinstance(event, Mapping) or event.get("detail-type") != DETAIL_TYPE:
        kind = event.get("detail-type") if isinstance(event, Mapping) else type(event).__name__
        raise MalformedEventError(f"not an EventBridge {DETAIL_TYPE!r} event (got {kind!r}): check the rule")
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise MalformedEventError(f"an {DETAIL_TYPE!r} event without a detail object")
    return detail


def _masked(text: str, tokens: Iterable[str]) -> str:
    """``text`` with every copy of a token replaced by its fingerprint: a reason may quote the environment."""
    for token in tokens:
        text = mask_token(text, token)
    return text


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
