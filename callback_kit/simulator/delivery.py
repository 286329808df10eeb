"""Delivery: what the state machines sent, handed to in-process handlers in the shape Lambda delivers it.

:class:`Delivering` routes SQS queues (Lambda's event source mapping, with batch item failures), EventBridge
rule targets (async invokes, with Lambda's retries) and ``lambda:invoke`` calls to handlers, and delivers what
is ready with :meth:`Delivering.deliver_once`; the background pump that calls it lives in
:mod:`callback_kit.simulator.harness`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callback_kit.outcome import lambda_error_cause
from callback_kit.simulator.cloud import CloudResources
from callback_kit.simulator.records import Delivery, LambdaHandler, Queue, find_token, token_fingerprint
from callback_kit.testing import FakeLambdaContext

_log = logging.getLogger("callback_kit.simulator")

__all__ = ["Delivering"]


@dataclass
class _SqsRoute:
    queue: Queue
    handler: LambdaHandler
    batch_size: int
    visibility_timeout: int | None
    as_eventbridge: bool
    retries: int
    retry_delay: float


@dataclass
class _Pending:
    """An event waiting to be (re)delivered to a handler (async invokes and their retries)."""

    source: str
    target: str
    handler: LambdaHandler
    event: Any
    attempt: int = 1
    not_before: float = 0.0
    retries: int = 0
    retry_delay: float = 0.0


@dataclass
class _LambdaRoute:
    handler: LambdaHandler
    fail_task_on_error: bool


class Delivering(CloudResources):
    """Routing and delivery to handlers; the base of :class:`~callback_kit.simulator.LocalStepFunctions`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sqs_routes: list[_SqsRoute] = []
        self._lambda_routes: dict[str, _LambdaRoute] = {}
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        self.dead_letters: list[Delivery] = []
        """Async deliveries (EventBridge, Lambda) whose handler raised on every attempt."""

    # -- routing ---------------------------------------------------------------------------------------

    def route_sqs(
        self,
        queue: Queue,
        handler: LambdaHandler,
        *,
        batch_size: int = 10,
        visibility_timeout: int | None = None,
    ) -> None:
        """Deliver the queue's messages to ``handler`` as Lambda's SQS event source mapping does.

        Each delivery receives up to ``batch_size`` messages, builds the Lambda SQS event, calls the
        handler, and deletes every message not named in the returned ``batchItemFailures`` (all of them
        stay when the handler raises). The others become visible again after ``visibility_timeout``
        seconds (default: the queue's), like on AWS, and moto's redrive policy sends them to a DLQ.

        Example:
            >>> sim.route_sqs(q, handler, visibility_timeout=1)              # doctest: +SKIP
        """
        self._sqs_routes.append(_SqsRoute(queue, handler, batch_size, visibility_timeout, False, 0, 0.0))

    def route_eventbridge(
        self, queue: Queue, handler: LambdaHandler, *, retries: int = 2, retry_delay: float = 0.0
    ) -> None:
        """Deliver EventBridge envelopes that a rule put on ``queue`` to ``handler`` as an async invoke.

        The message is taken off the queue at once (EventBridge has handed it to Lambda). When the handler
        raises it is called again up to ``retries`` times, ``retry_delay`` seconds apart (AWS: twice, about
        1 and 2 minutes later), then the delivery is kept in :attr:`dead_letters`.

        Example:
            >>> sim.create_event_bus_to_queue("bus", q)                      # doctest: +SKIP
            >>> sim.route_eventbridge(q, handler, retries=0)  # doctest: +SKIP
        """
        self._sqs_routes.append(_SqsRoute(queue, handler, 10, None, True, retries, retry_delay))

    def route_lambda(self, function_name: str, handler: LambdaHandler, *, fail_task_on_error: bool = True) -> str:
        """Create ``function_name`` in moto (if needed) and run ``handler`` when a state machine invokes it.

        The handler receives the task's ``Payload`` and runs as Lambda runs it: within the invoke (the default
        ``RequestResponse``), so that an ordinary ``lambda:invoke`` task gets its return value as ``Payload``
        and a raised exception fails the task with its type name as the error (``lambda:invoke.waitForTaskToken``
        included); or queued for the pump when the task asks for ``"InvocationType": "Event"``, with Lambda's
        two retries. ``fail_task_on_error=False`` keeps a raise from failing the invoke: the exception goes to
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

    def _enqueue(self, pending: _Pending) -> None:
        with self._pending_lock:
            self._pending.append(pending)

    # -- delivery ------------------------------------------------------------------------------------------

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
            self._enqueue(_Pending(source="lambda", target=name, handler=route.handler, event=event, retries=2))
            return b""
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

    def deliver_once(self, wait: float = 0.0) -> int:
        """Deliver everything that is ready now, once; return how many handler calls were made.

        Args:
            wait: seconds to keep looking when nothing is ready (0 = a single pass).

        Example:
            >>> execution_arn = sim.start_execution(arn)                     # doctest: +SKIP
            >>> sim.deliver_once(wait=1)  # doctest: +SKIP
            1
        """
        deadline = time.monotonic() + wait
        while True:
            jobs = self._collect()
            for job in jobs:
                job()
            if jobs or time.monotonic() >= deadline:
                return len(jobs)
            time.sleep(0.02)

    def _collect(self) -> list[Callable[[], None]]:
        """Take what is ready off the queues and the pending list; return one job per handler call.

        Receiving is serialised (moto's SQS is not built for concurrent receivers in one process), while
        the returned jobs may run on several pump threads at once, as Lambda runs several invocations.
        """
        jobs: list[Callable[[], None]] = []
        with self._receive_lock:
            for route in list(self._sqs_routes):
                messages = self._receive(route)
                if not messages:
                    continue
                if not route.as_eventbridge:
                    jobs.append(functools.partial(self._process_batch, route, messages))
                    continue
                for message in messages:
                    # EventBridge has handed the event over: from here on Lambda's async retries apply.
                    self.sqs.delete_message(QueueUrl=route.queue.url, ReceiptHandle=message["ReceiptHandle"])
                    envelope = json.loads(message["Body"])
                    envelope.setdefault("account", self.account_id)  # moto omits it; AWS always sends it
                    self._enqueue(
                        _Pending(
                            source="eventbridge",
                            target=route.queue.name,
                            handler=route.handler,
                            event=envelope,
                            retries=route.retries,
                            retry_delay=route.retry_delay,
                        )
                    )
            now = time.monotonic()
            with self._pending_lock:
                ready = [p for p in self._pending if p.not_before <= now]
                self._pending = [p for p in self._pending if p.not_before > now]
        jobs.extend(functools.partial(self._process_pending, item) for item in ready)
        return jobs

    def _receive(self, route: _SqsRoute) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if route.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = route.visibility_timeout
        messages = self.sqs.receive_message(
            QueueUrl=route.queue.url,
            MaxNumberOfMessages=route.batch_size,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            **kwargs,
        ).get("Messages", [])
        return [dict(m) for m in messages]

    def _process_pending(self, item: _Pending) -> None:
        delivery = self._call(item.source, item.target, item.handler, item.event, item.attempt)
        if delivery.error is None:
            return
        if item.attempt <= item.retries:
            item.attempt += 1
            item.not_before = time.monotonic() + item.retry_delay
            self._enqueue(item)
        else:
            self.dead_letters.append(delivery)

    def _process_batch(self, route: _SqsRoute, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self.sqs_record(route.queue, m) for m in messages]}
        delivery = self._call("sqs", route.queue.name, route.handler, event, 1)
        if delivery.error is not None:
            return  # a raise fails the whole batch: every message stays for redelivery
        response = delivery.result if isinstance(delivery.result, Mapping) else {}
        failed = {
            item.get("itemIdentifier") for item in response.get("batchItemFailures") or [] if isinstance(item, Mapping)
        }
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in failed
        ]
        if done:
            self.sqs.delete_message_batch(QueueUrl=route.queue.url, Entries=done)  # type: ignore[arg-type]

    def sqs_record(self, queue: Queue, message: Mapping[str, Any]) -> dict[str, Any]:
        """Turn one ReceiveMessage message into the record Lambda's SQS event source mapping delivers.

        Example:
            >>> msg = sim.sqs.receive_message(QueueUrl=q.url)["Messages"][0]  # doctest: +SKIP
            >>> sim.sqs_record(q, msg)["eventSource"]  # doctest: +SKIP
            'aws:sqs'
        """
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: lambda_message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue.arn,
            "awsRegion": self.region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    def _call(self, source: str, target: str, handler: LambdaHandler, event: Any, attempt: int) -> Delivery:
        name = target.replace(".", "-")
        context = self._context_factory(name) if self._context_factory else FakeLambdaContext(function_name=name)
        tokens = tuple(token_fingerprint(t) for t in tokens_in(source, event))
        started = time.monotonic()
        result: Any = None
        error: BaseException | None = None
        try:
            result = handler(event, context)
        except Exception as exc:  # the handler is user code: any failure is a delivery outcome
            error = exc
        delivery = Delivery(source, target, event, result, error, attempt, tokens, time.monotonic() - started)
        self._emit_delivery(delivery)
        return delivery


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


def lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS API message attribute -> the camelCase form Lambda puts in SQS records."""
    binary = value.get("BinaryValue")
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": base64.b64encode(binary).decode("ascii") if isinstance(binary, bytes) else binary,
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [base64.b64encode(b).decode("ascii") for b in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType"),
    }


def tokens_in(source: str, event: Any) -> Sequence[str]:
    """Tokens an event carries, for observers' fingerprints (best effort)."""
    if source == "sqs":
        found = []
        for record in event.get("Records", []):
            with contextlib.suppress(ValueError, TypeError):
                token = find_token(json.loads(record["body"]))
                if token:
                    found.append(token)
        return found
    token = find_token(event.get("detail") if source == "eventbridge" else event)
    return [token] if token else []
