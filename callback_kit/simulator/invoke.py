"""Lambda invokes of routed functions, run as Lambda runs them.

moto's ``awslambda-simple`` backend does not run code. The engine swaps the ``invoke`` method of that backend's
instance for this account and region (the one seam moto documents for the simple backend) and hands each call to
:meth:`Invoking._on_invoke`, which runs the routed handler within the invoke for a synchronous call and queues it
for the pump for an ``Event`` invoke.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from typing import Any

from callback_kit.outcome import lambda_error_cause
from callback_kit.simulator.delivery import Delivering, Pending
from callback_kit.simulator.ledger import LEDGER
from callback_kit.simulator.records import LambdaHandler, find_token

__all__ = ["Invoking"]


@dataclass
class _LambdaRoute:
    handler: LambdaHandler
    fail_task_on_error: bool


class Invoking(Delivering):
    """Functions routed to handlers; a base of :class:`~callback_kit.simulator.LocalStepFunctions`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lambda_routes: dict[str, _LambdaRoute] = {}

    def route_lambda(self, function_name: str, handler: LambdaHandler, *, fail_task_on_error: bool = True) -> str:
        """Create ``function_name`` in moto (if needed) and run ``handler`` when a state machine invokes it.

        The handler receives the task's ``Payload`` and runs as Lambda runs it: within the invoke (the default
        ``RequestResponse``), so that an ordinary ``lambda:invoke`` task gets its return value as ``Payload``
        and a raised exception fails the task with its type name as the error (``lambda:invoke.waitForTaskToken``
        included); or queued for the pump, with Lambda's two retries, when invoked with ``InvocationType=Event``
        (moto's interpreter drops a task's ``InvocationType``: state machines always invoke synchronously).
        ``fail_task_on_error=False`` keeps a raise from failing the invoke: the exception goes to
        :attr:`dead_letters` and the task waits for its callback, which shows whether the handler's own
        SendTaskFailure reached it.

        Returns:
            The function ARN, for the state machine's ``FunctionName``.

        Example:
            >>> fn_arn = sim.route_lambda("notify", handler)                 # doctest: +SKIP
        """
        try:
            arn = self.lambda_.get_function(FunctionName=function_name)["Configuration"]["FunctionArn"]
        except self.lambda_.exceptions.ResourceNotFoundException:
            arn = self.create_function(function_name)
        self._lambda_routes[function_name] = _LambdaRoute(handler, fail_task_on_error)
        return arn

    def _lambda_route(self, function_name: str) -> _LambdaRoute | None:
        # FunctionName may be a name, a full or partial ARN, with or without a qualifier.
        name = function_name.split(":function:")[-1].split(":")[0]
        return self._lambda_routes.get(name)

    def _on_invoke(self, function_name: str, body: Any, headers: Any, response_headers: dict[str, str]) -> bytes | None:
        """Run a routed function as Lambda does: in the call for RequestResponse, queued for an ``Event`` invoke.

        A synchronous call answers with the handler's return value as JSON (an ordinary ``lambda:invoke`` task
        gets it as its ``Payload``); a raise answers with Lambda's error document and the
        ``x-amz-function-error`` header, so that the task fails with the exception's type name as on AWS. The
        handler may send its own callback during the call: the simulator takes callbacks from the moment the
        token exists (see :mod:`~callback_kit.simulator.ledger`).
        """
        route = self._lambda_route(function_name)
        if route is None:
            return None
        name = function_name.split(":function:")[-1].split(":")[0]
        event = json.loads(body) if body else {}
        invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
        if invocation_type == "DryRun":
            return b""
        if invocation_type == "Event":  # Lambda queues it and retries a failure twice
            self._enqueue(Pending(source="lambda", target=name, handler=route.handler, event=event, retries=2))
            return b""
        token = find_token(event)
        if token is not None:  # the function now has the task: its heartbeat clock runs from here
            LEDGER.hand_over(token)
        delivery = self._call("lambda", name, route.handler, event, 1)
        if delivery.error is not None:
            if not route.fail_task_on_error:
                self.dead_letters.append(delivery)
                return b"null"
            return _function_error(response_headers, delivery.error)
        try:
            return json.dumps(delivery.result).encode("utf-8")
        except (TypeError, ValueError) as exc:  # what Lambda's Python runtime answers for such a return value
            return _function_error(response_headers, exc, error_type="Runtime.MarshalError")


def _header(headers: Any, name: str) -> str | None:
    """A request header, whatever its case."""
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name.lower():
            return str(value)
    return None


def _function_error(response_headers: dict[str, str], error: BaseException, *, error_type: str | None = None) -> bytes:
    """Lambda's answer to a synchronous invoke whose handler raised: the error document, flagged ``Unhandled``."""
    response_headers["x-amz-function-error"] = "Unhandled"
    kind = error_type or type(error).__name__
    try:
        message = str(error)
    except Exception:  # an exception whose __str__ raises still has a name
        message = kind
    return lambda_error_cause(message, kind, traceback.format_tb(error.__traceback__)).encode("utf-8")
