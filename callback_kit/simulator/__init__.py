"""Run real state machines offline on moto's Step Functions simulator, with in-process workers.

This is the harness behind the project's end-to-end tests, the local demo and the pytest fixture shipped
to users. Inside a :class:`LocalStepFunctions` block, moto runs the Amazon States Language for real: a
``.waitForTaskToken`` task sends its SQS message or EventBridge event through moto's own SQS/EventBridge,
waits for SendTaskSuccess/SendTaskFailure, enforces ``HeartbeatSeconds``/``TimeoutSeconds`` with real
timers and runs Catch. The harness then plays the part of Lambda: it receives what the state machine sent
and hands it to plain ``handler(event, context)`` callables, in the exact shape Lambda would deliver.

moto is a test/dev extra only, so it is imported lazily; importing this package costs nothing more than boto3.

Where moto differs from AWS, and what the harness does about it (checked with moto 5.2.5):

* Lambda: the ``awslambda-simple`` backend does not run code. The harness swaps the ``invoke`` method of that
  backend's instance for this account and region (the one seam moto itself documents for the simple backend)
  and runs routed handlers as Lambda does: within the invoke for a synchronous call, so that an ordinary
  ``lambda:invoke`` task gets the return value as ``Payload`` and a raise fails the task with the exception's
  type name (``errorType``), and queued for the pump (with Lambda's two retries) for ``InvocationType=Event``.
  moto's interpreter drops a task's ``InvocationType``, so state machines always invoke synchronously here.
* EventBridge envelopes that moto puts on an SQS target lack the ``account`` field; the harness adds it.
* Activities (GetActivityTask) are not implemented by moto; :meth:`LocalStepFunctions.create_activity`
  works, polling does not.
* Callback tasks answer as on AWS: the simulator keeps its own ledger of the tokens it issued
  (:mod:`~callback_kit.simulator.ledger`), so a closed task's token (answered, timed out, stopped, retried)
  answers ``TaskTimedOut`` where moto says ``InvalidToken`` or silently accepts a second answer; a token never
  issued answers ``InvalidToken``; heartbeats are accepted on tasks without ``HeartbeatSeconds``; a callback
  that lands before moto would be ready for it is never lost (:mod:`~callback_kit.simulator.interpreter`).
* ``TimeoutSeconds`` defaults to 60 s in moto (AWS: 99,999,999 s); tests should always set it.
* The ``cause`` of SendTaskFailure is dropped for SQS/EventBridge tasks; size limits are not enforced.
* Unnamed executions all get the same name, so :meth:`LocalStepFunctions.start_execution` always names them.
* moto logs a long trace for every failed state; the harness quiets ``moto`` loggers while it runs.

Example:
    >>> with LocalStepFunctions() as sim:                                    # doctest: +SKIP
    ...     queue = sim.create_queue("work")
    ...     sim.route_sqs(queue, handler)
    ...     arn = sim.create_state_machine("flow", definition)
    ...     with sim.pump():
    ...         result = sim.wait_for_execution(sim.start_execution(arn, {"n": 1}), timeout=3)
    ...     assert result["status"] == "SUCCEEDED"

The package, one role per module: :mod:`~callback_kit.simulator.engine` (moto's mock, clients, hooks, observers),
:mod:`~callback_kit.simulator.cloud` (resources and executions), :mod:`~callback_kit.simulator.delivery` (routing
events to handlers as Lambda would), :mod:`~callback_kit.simulator.harness` (:class:`LocalStepFunctions` and its
background pump), :mod:`~callback_kit.simulator.watch` (history as readable lines) and
:mod:`~callback_kit.simulator.records` (what observers receive); :mod:`~callback_kit.simulator.server` runs moto as
a loopback server for code in other processes.
"""

from __future__ import annotations

from callback_kit.simulator.cloud import substitute
from callback_kit.simulator.harness import LocalStepFunctions
from callback_kit.simulator.records import (
    TERMINAL_STATUSES,
    TOKEN_KEYS,
    CallbackCall,
    Delivery,
    LambdaHandler,
    Queue,
    token_fingerprint,
)
from callback_kit.simulator.server import moto_server
from callback_kit.simulator.watch import ExecutionEvent, ExecutionWatcher, format_event

__all__ = [
    "TERMINAL_STATUSES",
    "TOKEN_KEYS",
    "CallbackCall",
    "Delivery",
    "ExecutionEvent",
    "ExecutionWatcher",
    "LambdaHandler",
    "LocalStepFunctions",
    "Queue",
    "format_event",
    "moto_server",
    "substitute",
    "token_fingerprint",
]
