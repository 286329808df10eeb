"""Changes to moto's Step Functions (5.2.x) that make its callback tasks behave as AWS's do.

Installed while at least one simulator runs (reference counted, undone when the last one stops), because they
are class attributes of moto's interpreter and backend. Each one hands a decision moto spreads over several
threads to the :data:`~callback_kit.simulator.ledger.LEDGER`:

* **One owner for a task's fate.** Every attempt of a ``.waitForTaskToken`` task is opened in the ledger when it
  starts (so heartbeats and callbacks are accepted from the moment the token exists) and closed when it ends.
  The task waits on the ledger instead of moto's heartbeat endpoint, which moto sets up only *after* invoking
  the worker and then waits on alone: a callback landing in between was accepted (200) and lost, and the task
  failed ``States.Timeout`` at HeartbeatSeconds.
* **A new token per attempt.** moto issues a task's token once per state entry, so a Retry reused the first
  attempt's token and its outcome; AWS issues a new token for every attempt.
* **A stopped execution stays stopped.** Once StopExecution has stopped the program, the task that was waiting
  ends and moto recorded its end as an execution failure (FAILED); AWS reports the execution ABORTED.
* **Callbacks answered as AWS answers them.** The Step Functions backend's ``send_task_*`` answer from the ledger
  (see :mod:`~callback_kit.simulator.callback_api`), and ``create/update_state_machine`` refuse what the
  simulator cannot run (see :mod:`~callback_kit.simulator.definitions`), for every client: in-process mocks and
  :func:`~callback_kit.simulator.moto_server` alike.
* **The cause is kept.** moto's SendTaskFailure handler drops ``cause``; AWS keeps it for the history and Catch.

moto is imported inside :func:`install`, never at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from callback_kit.simulator.callback_api import Kind, strict_backend_method
from callback_kit.simulator.definitions import UnsupportedDefinitionError, check_definition
from callback_kit.simulator.ledger import LEDGER, Closed

__all__ = ["install", "uninstall"]

# The ledger's TimeoutSeconds clock runs out this much before moto's own timer for the state, so that a callback
# accepted just before the deadline has time to reach the task before moto's timer decides "timed out".
_TIMER_MARGIN = 0.1

_lock = threading.Lock()
_users = 0
_undo: list[Callable[[], None]] = []


def install() -> None:
    """Apply the changes to moto's interpreter (idempotent while a simulator runs; see :func:`uninstall`)."""
    global _users
    with _lock:
        _users += 1
        if _users == 1:
            try:
                _patch_all()
            except BaseException:
                _users = 0
                _unpatch_all()
                raise


def uninstall() -> None:
    """Undo :func:`install` once the last simulator stops, and drop the ledger's records."""
    global _users
    with _lock:
        _users = max(0, _users - 1)
        if _users == 0:
            _unpatch_all()
            LEDGER.forget()


def _set(owner: type, name: str, value: Any) -> None:
    had_own = name in owner.__dict__
    previous = owner.__dict__.get(name)

    def undo() -> None:
        if had_own:
            setattr(owner, name, previous)
        else:
            delattr(owner, name)

    setattr(owner, name, value)
    _undo.append(undo)


def _unpatch_all() -> None:
    while _undo:
        _undo.pop()()


def _patch_all() -> None:
    from moto.core.exceptions import AWSError
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeTimedOut, HeartbeatTimedOut
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    wait_for_token = ResourceCondition.WaitForTaskToken
    original_attempt = StateTaskServiceCallback._evaluate_with_timeout
    original_wait = StateTaskServiceCallback._eval_wait_for_task_token
    original_set_error = Environment.set_error

    def evaluate_with_timeout(self: Any, env: Any) -> Any:
        """One attempt of the task: open its token in the ledger (a new token for a retry), close it at the end."""
        task = env.states.context_object.context_object_data.get("Task") or {}
        token = task.get("Token")
        if self.resource.condition != wait_for_token or not token:
            return original_attempt(self, env)
        if LEDGER.issued(token):  # an earlier attempt used it: AWS issues a new token for each attempt
            token = env.states.context_object.update_task_token()
            env.callback_pool_manager.add(token)
        self.timeout.eval(env=env)
        timeout_seconds = float(env.stack.pop())
        heartbeat_seconds: float | None = None
        if self.heartbeat is not None:
            self.heartbeat.eval(env=env)
            heartbeat_seconds = float(env.stack.pop())
        LEDGER.open(
            token,
            timeout_seconds=max(0.0, timeout_seconds - _TIMER_MARGIN),
            heartbeat_seconds=heartbeat_seconds,
            is_running=env.is_running,
        )
        try:
            return original_attempt(self, env)
        finally:
            LEDGER.close(token)

    def eval_wait_for_task_token(
        self: Any, env: Any, timeout_seconds: int, callback_endpoint: Any, heartbeat_endpoint: Any
    ) -> Any:
        """Wait on the ledger: it sees every outcome, whenever it arrived, and owns both clocks."""
        token = callback_endpoint.callback_id
        if not LEDGER.issued(token):
            return original_wait(self, env, timeout_seconds, callback_endpoint, heartbeat_endpoint)
        reason, outcome = LEDGER.wait(token, env.is_running)
        if reason is Closed.ANSWERED:
            return outcome
        if reason is Closed.HEARTBEAT_TIMED_OUT:
            return HeartbeatTimedOut()
        return CallbackOutcomeTimedOut(callback_id=token)

    def send_task_failure(self: Any) -> Any:
        """moto's handler, passing ``cause`` on to the backend."""
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    def set_error(self: Any, error: Any) -> None:
        """moto's, except that it leaves a stopped program stopped."""
        if isinstance(self._program_state, ProgramStopped):
            return
        original_set_error(self, error)

    def refusing(original: Callable[..., Any]) -> Callable[..., Any]:
        """moto's create/update_state_machine, refusing what the simulator cannot run as AWS does."""

        def method(backend: Any, *args: Any, **kwargs: Any) -> Any:
            definition = kwargs.get("definition", args[1] if len(args) > 1 else None)
            if definition is not None:
                try:
                    check_definition(definition)
                except UnsupportedDefinitionError as exc:
                    raise AWSError(str(exc), exception_type="InvalidDefinition") from None
            return original(backend, *args, **kwargs)

        return method

    backend = StepFunctionsParserBackend
    callbacks: tuple[tuple[str, Kind], ...] = (
        ("send_task_success", "success"),
        ("send_task_failure", "failure"),
        ("send_task_heartbeat", "heartbeat"),
    )
    for name, kind in callbacks:
        _set(backend, name, strict_backend_method(kind, getattr(backend, name)))
    for name in ("create_state_machine", "update_state_machine"):
        _set(backend, name, refusing(getattr(backend, name)))
    _set(StepFunctionResponse, "send_task_failure", send_task_failure)
    _set(Environment, "set_error", set_error)
    _set(StateTaskServiceCallback, "_evaluate_with_timeout", evaluate_with_timeout)
    _set(StateTaskServiceCallback, "_eval_wait_for_task_token", eval_wait_for_task_token)
