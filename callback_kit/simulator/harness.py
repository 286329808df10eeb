"""The assembled harness, :class:`LocalStepFunctions`: engine, resources and delivery, plus the background pump."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from callback_kit.simulator.notifications import Notifying

_log = logging.getLogger("callback_kit.simulator")

__all__ = ["LocalStepFunctions"]


class LocalStepFunctions(Notifying):
    """moto's Step Functions simulator in-process, with helpers and in-process Lambda delivery.

    On entry it sets fake credentials and the region (restoring the environment on exit), starts
    ``mock_aws`` with the state machine interpreter and the docker-less Lambda backend switched on, and
    quiets moto's loggers. Route queues and functions to handlers, then deliver either deterministically
    with :meth:`deliver_once` or in the background with :meth:`pump`.

    Args:
        region: the region for every client and resource.
        account_id: moto's default account; only used to build ARNs and the Lambda context.
        quiet: lower moto's loggers to CRITICAL while the simulator runs.
        context_factory: builds the Lambda context for a call from the function (or queue) name; by default
            ``callback_kit.testing.FakeLambdaContext(function_name=name)``, with 15 minutes remaining.

    Example:
        >>> def handler(event, context):                                     # doctest: +SKIP
        ...     for record in event["Records"]:
        ...         token = json.loads(record["body"])["TaskToken"]
        ...         boto3.client("stepfunctions").send_task_success(taskToken=token, output="{}")
        ...     return {"batchItemFailures": []}
        >>> with LocalStepFunctions() as sim:                                # doctest: +SKIP
        ...     sim.route_sqs(sim.create_queue("work"), handler)
        ...     ...
    """

    def __init__(
        self,
        region: str = "us-east-1",
        *,
        account_id: str = "123456789012",
        quiet: bool = True,
        context_factory: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__(region, account_id=account_id, quiet=quiet, context_factory=context_factory)
        self._pump_threads: list[threading.Thread] = []
        self._pump_stop = threading.Event()

    def __exit__(self, *exc_info: object) -> None:
        self.stop_pump()
        super().__exit__(*exc_info)

    # -- background pump -------------------------------------------------------------------------------

    def start_pump(self, interval: float = 0.02, *, concurrency: int = 4) -> None:
        """Start ``concurrency`` daemon threads that deliver until :meth:`stop_pump`.

        Each thread loops over :meth:`deliver_once`, so up to ``concurrency`` handler calls run at once:
        one slow, heartbeating handler does not hold up the other executions' tasks.

        Example:
            >>> sim.start_pump(concurrency=2)                                # doctest: +SKIP
            >>> sim.stop_pump()  # doctest: +SKIP
        """
        if self._pump_threads:
            return
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    if not self.deliver_once():
                        stop.wait(interval)
                except Exception:  # keep pumping: one bad round must not hang every later execution
                    _log.exception("simulator pump round failed")
                    stop.wait(interval)

        self._pump_stop = stop
        for i in range(max(1, concurrency)):
            thread = threading.Thread(target=loop, name=f"callback-kit-sim-pump-{i}", daemon=True)
            thread.start()
            self._pump_threads.append(thread)

    def stop_pump(self, timeout: float = 5.0) -> None:
        """Stop the pump threads (waits up to ``timeout`` for handler calls in progress)."""
        self._pump_stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._pump_threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._pump_threads.clear()
        self._pump_stop = threading.Event()

    @contextlib.contextmanager
    def pump(self, interval: float = 0.02, *, concurrency: int = 4) -> Iterator[LocalStepFunctions]:
        """Deliver in the background for the duration of a ``with`` block.

        Example:
            >>> with sim.pump():                                             # doctest: +SKIP
            ...     result = sim.wait_for_execution(sim.start_execution(arn), timeout=3)
        """
        self.start_pump(interval, concurrency=concurrency)
        try:
            yield self
        finally:
            self.stop_pump()

    def run(self, state_machine_arn: str, input: Any = None, *, timeout: float = 5.0) -> dict[str, Any]:
        """Start an execution, deliver its callbacks in the background and return its final description.

        Example:
            >>> sim.run(arn, {"n": 1}, timeout=3)["status"]                  # doctest: +SKIP
            'SUCCEEDED'
        """
        running = bool(self._pump_threads)
        if not running:
            self.start_pump()
        try:
            return self.wait_for_execution(self.start_execution(state_machine_arn, input), timeout)
        finally:
            if not running:
                self.stop_pump()
