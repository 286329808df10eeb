"""Activities on moto's simulator: serve GetActivityTask from the tasks moto's interpreter has scheduled.

moto's Step Functions interpreter runs activity tasks (it schedules the task, waits for a worker to take it,
then for SendTaskSuccess/Failure with heartbeats), but two things keep a worker from ever seeing one
(checked with moto 5.2.5):

* ``GetActivityTask`` is not implemented by moto's API (``NotImplementedError``);
* each execution gets an empty activity store (``activity_store={}`` in ``StepFunctionsParserBackend
  .start_execution``), so an activity task fails at once with ``States.Runtime`` "activity does not exist".

:class:`ActivityTaskBridge` fixes both for the lifetime of a ``with`` block: executions started inside it get a
store that knows every activity created through the API, and :meth:`ActivityTaskBridge.client` returns a
``stepfunctions`` client for :class:`callback_kit.activity.ActivityWorker` whose ``get_activity_task`` takes the
task moto scheduled (and tells moto it started, so that ``ActivityStarted`` is logged and the heartbeat and
timeout timers run) while ``send_task_*`` go to moto through boto3, as on AWS.

Example:
    >>> with LocalStepFunctions() as sim, ActivityTaskBridge(sim) as bridge:   # doctest: +SKIP
    ...     arn = sim.create_activity("ageCheck")
    ...     worker = ActivityWorker(arn, check_age, client=bridge.client())
    ...     worker.start()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callback_kit.logs import fingerprint
from callback_kit.simulator import LocalStepFunctions, moto_adapter

__all__ = ["ActivityTaskBridge", "BridgedStepFunctionsClient", "HandedOut"]


@dataclass(frozen=True)
class HandedOut:
    """An activity task handed to a worker by GetActivityTask.

    Attributes:
        activity_arn: the activity polled.
        worker_name: the poller's ``workerName``.
        input: the task input (JSON text).
        token: the raw task token: never print or log it; use :attr:`fingerprint`.
    """

    activity_arn: str
    worker_name: str
    input: str
    token: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """The token's fingerprint, in the library's format."""
        return fingerprint(self.token)


class _ActivityStore(dict[str, Any]):
    """The activity store moto's executions look activities up in, filled on demand from the API."""

    def __init__(self, lookup: Callable[[str], Any]) -> None:
        super().__init__()
        self._lookup = lookup
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            if key not in self:
                found = self._lookup(key)
                if found is None:
                    return default
                self[key] = found
            return self[key]


class ActivityTaskBridge:
    """Hands moto's scheduled activity tasks to in-process workers; a context manager.

    Args:
        sim: the running simulator.
        hold_seconds: how long one ``get_activity_task`` waits for a task before it returns none (AWS: 60 s).
        poll_interval: how often a waiting ``get_activity_task`` looks for a task.
        start_grace: after telling moto a task started, how long to wait for moto to arm the task's heartbeat
            timer before handing the token out (a callback sent before that is lost by moto; tasks without
            ``HeartbeatSeconds`` are handed out after this delay).
    """

    def __init__(
        self,
        sim: LocalStepFunctions,
        *,
        hold_seconds: float = 1.0,
        poll_interval: float = 0.02,
        start_grace: float = 0.5,
    ) -> None:
        self.sim = sim
        self.hold_seconds = hold_seconds
        self.poll_interval = poll_interval
        self.start_grace = start_grace
        self._store = _ActivityStore(self._find_activity)
        self._closed = threading.Event()
        self._listeners: list[Callable[[HandedOut], None]] = []
        self._undo: Callable[[], None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> ActivityTaskBridge:
        moto_adapter.require()
        self._undo = moto_adapter.use_activity_store(self._store)
        self._closed.clear()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        if self._undo is not None:
            self._undo()
            self._undo = None

    def close(self) -> None:
        """End every waiting ``get_activity_task`` at once (they return no task)."""
        self._closed.set()

    def on_handed_out(self, listener: Callable[[HandedOut], None]) -> None:
        """Call ``listener`` each time a task is handed to a worker (from the worker's polling thread)."""
        self._listeners.append(listener)

    def client(self) -> BridgedStepFunctionsClient:
        """A client for :class:`~callback_kit.activity.ActivityWorker`'s ``client=``."""
        return BridgedStepFunctionsClient(self)

    # -- GetActivityTask ---------------------------------------------------------------------------------
    def get_activity_task(self, activity_arn: str, worker_name: str = "") -> dict[str, Any]:
        """Take the oldest task moto scheduled on ``activity_arn``, as GetActivityTask does.

        Waits up to :attr:`hold_seconds`; returns ``{}`` (no ``taskToken``) when none came.

        Raises:
            botocore.exceptions.ClientError: ``ActivityDoesNotExist``.
        """
        activity = self._store.get(activity_arn)
        if activity is None:
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "ActivityDoesNotExist", "Message": f"Activity Does Not Exist: '{activity_arn}'"}}
            raise ClientError(error, "GetActivityTask")  # type: ignore[arg-type]
        deadline = time.monotonic() + self.hold_seconds
        while not self._closed.is_set():
            task = moto_adapter.take_activity_task(activity)
            if task is None:
                if time.monotonic() >= deadline:
                    break
                self._closed.wait(self.poll_interval)
                continue
            token, task_input = task
            if self._start(token, worker_name):
                handed = HandedOut(activity_arn, worker_name, task_input, token)
                for listener in list(self._listeners):
                    listener(handed)
                return {"taskToken": token, "input": task_input}
            # The execution that scheduled it has ended: the task is stale, look for the next one.
        return {}

    def _start(self, token: str, worker_name: str) -> bool:
        """Tell moto the task started (ActivityStarted, timers armed); False if no running execution has it."""
        sim = self.sim
        endpoint = moto_adapter.start_activity_task(sim.account_id, sim.region, token, worker_name)
        if endpoint is None:
            return False
        # moto arms the heartbeat timer only after it logged ActivityStarted; an answer that came before would be
        # lost and the task would time out. Wait for the timer, as the simulator does for Lambda.
        deadline = time.monotonic() + self.start_grace
        while not moto_adapter.activity_timer_armed(endpoint) and time.monotonic() < deadline:
            time.sleep(0.005)
        return True

    def _find_activity(self, activity_arn: str) -> Any:
        """moto's interpreter-side Activity for an activity created through the API, or None."""
        return moto_adapter.interpreter_activity(self.sim.account_id, self.sim.region, activity_arn)


class BridgedStepFunctionsClient:
    """The subset of a ``stepfunctions`` client an activity worker uses, for moto's simulator.

    ``get_activity_task`` is answered by the bridge; the callbacks go to moto through boto3, so the simulator
    (and its ``on_callback`` observers) sees them exactly as it sees a Lambda worker's.
    """

    def __init__(self, bridge: ActivityTaskBridge) -> None:
        self._bridge = bridge

    def get_activity_task(self, *, activityArn: str, workerName: str = "") -> dict[str, Any]:
        """GetActivityTask, served from moto's scheduled activity tasks."""
        return self._bridge.get_activity_task(activityArn, workerName)

    def send_task_success(self, *, taskToken: str, output: str) -> Any:
        """SendTaskSuccess to moto."""
        return self._bridge.sim.sfn.send_task_success(taskToken=taskToken, output=output)

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> Any:
        """SendTaskFailure to moto."""
        return self._bridge.sim.sfn.send_task_failure(taskToken=taskToken, error=error, cause=cause)

    def send_task_heartbeat(self, *, taskToken: str) -> Any:
        """SendTaskHeartbeat to moto."""
        return self._bridge.sim.sfn.send_task_heartbeat(taskToken=taskToken)
