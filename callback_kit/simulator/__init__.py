"""Run real state machines offline on moto's Step Functions simulator, with in-process workers.

This is the harness behind the project's end-to-end tests, the local demo and the pytest fixture shipped
to users. Inside a :class:`LocalStepFunctions` block, moto runs the Amazon States Language for real: a
``.waitForTaskToken`` task sends its SQS message, EventBridge event or SNS notification through moto's own
services, or invokes a Lambda function, then waits for SendTaskSuccess/SendTaskFailure, with real
``HeartbeatSeconds``/``TimeoutSeconds`` timers, Retry and Catch. The harness plays the part of Lambda: it hands
what the state machine sent to plain ``handler(event, context)`` callables, in the shape Lambda delivers it.

Its rule: code that is right on AWS passes on it, and code that is wrong on AWS fails. Where moto differs from
AWS, the harness answers as AWS does (moto ``>=5.2.5,<5.2.7``, every touch point in
:mod:`~callback_kit.simulator.moto_adapter`; the guide is ``docs/simulator.md``):

* Callbacks: the simulator keeps its own ledger of the tokens it issued (:mod:`~callback_kit.simulator.ledger`).
  A closed task's token (answered, timed out, stopped, retried) answers ``TaskTimedOut`` where moto says
  ``InvalidToken`` or silently accepts a second answer; a token never issued answers ``InvalidToken``;
  heartbeats are accepted on tasks without ``HeartbeatSeconds``; a callback that lands before moto's task code
  waits for it is never lost; each Retry attempt gets a new token (:mod:`~callback_kit.simulator.interpreter`).
* Requests are checked as the service checks them (:mod:`~callback_kit.simulator.callback_api`): output over
  262,144 UTF-8 bytes, error over 256 and cause over 32,768 characters are ``ValidationException``, output that
  is not JSON is ``InvalidOutput``; the cause of SendTaskFailure is kept (moto drops it).
* Lambda: the ``awslambda-simple`` backend does not run code. The harness swaps the ``invoke`` method of that
  backend's instance for this account and region (the one seam moto itself documents for the simple backend)
  and runs routed handlers as Lambda does: within the invoke for a synchronous call, so that an ordinary
  ``lambda:invoke`` task gets the return value as ``Payload`` and a raise fails the task with the exception's
  type name (``errorType``), and queued for the pump (with Lambda's two retries) for ``InvocationType=Event``.
  moto's interpreter drops a task's ``InvocationType``, so state machines always invoke synchronously here.
* SNS: moto delivers only to queues; :meth:`LocalStepFunctions.route_sns` hands a topic's messages to a handler
  as SNS invokes Lambda (:mod:`~callback_kit.simulator.notifications`).
* What moto cannot run as AWS does, JSONata and ``ecs:runTask``, is refused when the state machine is created
  (:mod:`~callback_kit.simulator.definitions`), rather than failing or hanging later.
* A stopped execution ends ABORTED (moto let the waiting task's end mark it FAILED).
* EventBridge envelopes that moto puts on an SQS target lack the ``account`` field; the harness adds it.
* Activities (GetActivityTask) are not implemented by moto; :meth:`LocalStepFunctions.create_activity`
  works, polling does not.
* ``TimeoutSeconds`` defaults to 60 s in moto (AWS: 99,999,999 s); tests should always set it.
* Unnamed executions all get the same name, so :meth:`LocalStepFunctions.start_execution` always names them.
* moto logs a long trace for every failed state; the harness quiets ``moto`` loggers while it runs.

moto is a test/dev extra only, so it is imported lazily; importing this package costs nothing more than boto3.

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
queues and EventBridge targets to handlers as Lambda would), :mod:`~callback_kit.simulator.invoke` (Lambda invokes),
:mod:`~callback_kit.simulator.notifications` (SNS),
:mod:`~callback_kit.simulator.harness` (:class:`LocalStepFunctions` and its background pump),
:mod:`~callback_kit.simulator.ledger`, :mod:`~callback_kit.simulator.callback_api` and
:mod:`~callback_kit.simulator.interpreter` (callbacks as AWS answers them), :mod:`~callback_kit.simulator.definitions`
(what is refused), :mod:`~callback_kit.simulator.watch` (history as readable lines) and
:mod:`~callback_kit.simulator.records` (what observers receive); :mod:`~callback_kit.simulator.server` runs moto as
a loopback server for code in other processes.
"""

from __future__ import annotations

from callback_kit.simulator.cloud import substitute
from callback_kit.simulator.definitions import UnsupportedDefinitionError
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
    "UnsupportedDefinitionError",
    "format_event",
    "moto_server",
    "substitute",
    "token_fingerprint",
]
