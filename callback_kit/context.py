"""What a running user function can ask about its task: ``current_task()``, ``heartbeat()``, ``is_cancelled()``.

The state lives in a ContextVar set by the runner around the user function, as Temporal's ``activity.info()``
does, so the function needs no extra parameter and stays callable directly in tests. For that reason the two
calls a function makes in passing work outside a task too: ``is_cancelled()`` is ``False`` and ``heartbeat()``
does nothing. ``current_task()`` and ``hand_off()`` have no sensible answer there and raise ``NotInTaskError``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from callback_kit.exceptions import NotInTaskError
from callback_kit.task.latch import Latch


@dataclass(frozen=True)
class TaskInfo:
    """Facts about the task being run. The token itself is deliberately absent: it must not leak into logs.

    Attributes:
        source: ``"sqs"``, ``"sns"``, ``"eventbridge"``, ``"direct"`` or ``"activity"``.
        token_fingerprint: a short hash of the task token, safe to log.
        record_id: the SQS message id or EventBridge event id, if any.
        execution_arn: the waiting execution, when the event says it.
        group_id: the FIFO message group, if any.
        heartbeat_interval: seconds between automatic heartbeats (``None``: off).
        envelope: what was unwrapped to reach the message in an SQS body: ``"sns"`` (an SNS notification) or
            ``"eventbridge"`` (an EventBridge event); ``None`` when the body was the message itself.
        kind: what waits for the answer: ``"stepfunctions"`` (a task token) or ``"durable"`` (a Lambda durable
            function's callback id; ``token_fingerprint`` is then the id's fingerprint).
    """

    source: str
    token_fingerprint: str
    record_id: str | None = None
    execution_arn: str | None = None
    group_id: str | None = None
    heartbeat_interval: float | None = None
    envelope: str | None = None
    kind: str = "stepfunctions"


class TaskState:
    """The runner's mutable per-task state behind the public functions (internal; one per task, hence slots)."""

    __slots__ = ("_lock", "beat", "cancelled", "expired", "handed_off", "info", "token")

    def __init__(self, info: TaskInfo, *, token: str | None = None) -> None:
        self.info = info
        self.cancelled = Latch()
        self.beat: Callable[[], None] | None = None
        #: The raw token, for :func:`hand_off` only; never logged, never put in :class:`TaskInfo`.
        self.token = token
        #: Set by :func:`hand_off`: someone else completes the task, so the runner sends nothing.
        self.handed_off = False
        #: Set by :meth:`expire`: callback-kit claimed the task (deadline, time limit, shutdown) and answers it.
        self.expired = False
        self._lock = threading.Lock()

    def hand_off(self) -> bool:
        """Mark the task handed off, unless it was expired first; whether it was marked."""
        with self._lock:
            if not self.expired:
                self.handed_off = True
            return self.handed_off

    def expire(self) -> bool:
        """Mark the task expired, so that no hand-off follows; whether it was handed off before."""
        with self._lock:
            self.expired = True
            return self.handed_off

    def __repr__(self) -> str:  # never the token
        return f"<TaskState {self.info.token_fingerprint} cancelled={self.cancelled.is_set()}>"


_current: ContextVar[TaskState | None] = ContextVar("callback_kit_task", default=None)


def current_task() -> TaskInfo:
    """The :class:`TaskInfo` of the task this code runs for.

    Example:
        >>> import callback_kit as ck
        >>> @ck.callback_handler
        ... def handler(payload: dict) -> dict:
        ...     return {"seen_by": ck.current_task().token_fingerprint}

    Raises:
        NotInTaskError: called outside a task run by callback-kit.
    """
    return _state().info


def heartbeat() -> None:
    """Ask for a heartbeat to be sent for the current task now, instead of at the next interval.

    Heartbeats are automatic; call this after a long step to tell Step Functions early that the work goes on.
    It does not block: the process's one heartbeat thread sends it (at most one per second per task). Outside a
    task (a test calling the function directly) it does nothing.

    Example:
        >>> import callback_kit as ck
        >>> def handle(batch: dict) -> dict:
        ...     for part in batch["parts"]:
        ...         ...  # long work
        ...         ck.heartbeat()
        ...     return {"done": True}
        >>> handle({"parts": [1, 2]})  # called directly, outside a task: the heartbeats are no-ops
        {'done': True}
    """
    state = _current.get()
    if state is not None and state.beat is not None:
        state.beat()


def is_cancelled() -> bool:
    """Whether Step Functions has closed this task (timed out, stopped, or answered elsewhere).

    It turns true when a heartbeat is answered "task closed" or when callback-kit gave up on the task (the Lambda
    deadline, an activity's ``max_task_seconds``, worker shutdown). Once it is true, callback-kit sends no
    completion for the task, so the function may as well stop. Outside a task (a test calling the function
    directly) it is ``False``: nothing has closed a task that does not exist.

    Example:
        >>> import callback_kit as ck
        >>> def handle(job: dict) -> dict:
        ...     for step in job["steps"]:
        ...         if ck.is_cancelled():
        ...             return {"stopped": True}  # nobody is waiting for this any more
        ...     return {"done": True}
        >>> handle({"steps": [1, 2]})  # called directly, outside a task
        {'done': True}
    """
    state = _current.get()
    return state is not None and state.cancelled.is_set()


def hand_off() -> str:
    """Take over the current task's completion: return its raw token and send nothing when the function returns.

    For a function that passes the token on (an approval e-mail, a row a stream finishes later): whoever holds
    the token completes the task with :func:`callback_kit.send_success` / :func:`callback_kit.send_failure` or
    the ``callback-kit send-*`` commands. Heartbeats stop when the function returns. The token is a bearer
    credential: never log it.

    For a Lambda durable callback (``current_task().kind == "durable"``) it returns the callback id, answered
    with ``ck.send_success(callback_id, value, kind="durable")`` or ``callback-kit send-success --durable``.

    Example:
        >>> import callback_kit as ck
        >>> def notify_approver(request: dict) -> None:
        ...     token = ck.hand_off()
        ...     ...  # e-mail a link that carries the token; the approval API completes the task

    Raises:
        NotInTaskError: called outside a task run by callback-kit, or after callback-kit answered the task itself
            (the Lambda deadline guard, an activity's ``max_task_seconds`` or shutdown: ``ck.is_cancelled()`` is
            then true).
    """
    state = _state()
    if state.token is None:
        raise NotInTaskError("this task has no token to hand off")
    if not state.hand_off():
        # Handing off a token callback-kit has answered (or is answering) would pass on a task that is over.
        raise NotInTaskError(
            "too late to hand off: callback-kit already answered this task (Lambda deadline, max_task_seconds or "
            "worker shutdown)"
        )
    return state.token


def _state() -> TaskState:
    state = _current.get()
    if state is None:
        raise NotInTaskError("this is only available inside a function run by callback-kit")
    return state
