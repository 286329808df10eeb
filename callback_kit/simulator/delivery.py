"""Delivery: what the state machines sent, handed to in-process handlers in the shape Lambda delivers it.

:class:`Delivering` routes SQS queues (Lambda's event source mapping, with batch item failures) and EventBridge
rule targets (async invokes, with Lambda's retries) to handlers, and delivers what is ready with
:meth:`Delivering.deliver_once`, which the background pump of :mod:`~callback_kit.simulator.harness` calls.
Lambda invokes are routed by :mod:`~callback_kit.simulator.invoke`, SNS topics by
:mod:`~callback_kit.simulator.notifications`.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from callback_kit.simulator.cloud import CloudResources
from callback_kit.simulator.records import Delivery, LambdaHandler, Queue, find_token, token_fingerprint
from callback_kit.sources.tokens import find_callback_id_path
from callback_kit.testing import FakeLambdaContext

_log = logging.getLogger("callback_kit.simulator")

__all__ = ["Delivering", "Pending", "SqsRoute"]


@dataclass
class SqsRoute:
    """A queue read as Lambda's event source mapping reads it, or a queue that stands for an async source.

    With ``async_source`` set (``"eventbridge"``, ``"sns"``), each message is something that source hands to
    Lambda as an asynchronous invoke: it is taken off the queue, turned into the Lambda event by ``convert``
    and delivered with Lambda's async retries.
    """

    queue: Queue
    handler: LambdaHandler
    batch_size: int = 10
    visibility_timeout: int | None = None
    async_source: str | None = None
    convert: Callable[[Mapping[str, Any]], Any] | None = None
    target: str | None = None
    retries: int = 0
    retry_delay: float = 0.0


@dataclass
class Pending:
    """An event waiting to be (re)delivered to a handler (async invokes and their retries)."""

    source: str
    target: str
    handler: LambdaHandler
    event: Any
    attempt: int = 1
    not_before: float = 0.0
    retries: int = 0
    retry_delay: float = 0.0


class Delivering(CloudResources):
    """Routing and delivery to handlers; the base of :class:`~callback_kit.simulator.LocalStepFunctions`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sqs_routes: list[SqsRoute] = []
        self._pending: list[Pending] = []
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
        self._sqs_routes.append(SqsRoute(queue, handler, batch_size, visibility_timeout))

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
        self._sqs_routes.append(
            SqsRoute(
                queue,
                handler,
                async_source="eventbridge",
                convert=self._eventbridge_event,
                retries=retries,
                retry_delay=retry_delay,
            )
        )

    def _eventbridge_event(self, message: Mapping[str, Any]) -> Any:
        envelope = json.loads(message["Body"])
        envelope.setdefault("account", self.account_id)  # moto omits it; AWS always sends it
        return envelope

    def _enqueue(self, pending: Pending) -> None:
        with self._pending_lock:
            self._pending.append(pending)

    # -- delivery ------------------------------------------------------------------------------------------

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
                if route.async_source is None or route.convert is None:
                    jobs.append(functools.partial(self._process_batch, route, messages))
                    continue
                for message in messages:
                    # The source has handed the event over: from here on Lambda's async retries apply.
                    self.sqs.delete_message(QueueUrl=route.queue.url, ReceiptHandle=message["ReceiptHandle"])
                    self._enqueue(
                        Pending(
                            source=route.async_source,
                            target=route.target or route.queue.name,
                            handler=route.handler,
                            event=route.convert(message),
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

    def _receive(self, route: SqsRoute) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if route.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = route.visibility_timeout
        messages = self.sqs.receive_message(
            QueueUrl=route.queue.url,
            MaxNumberOfMessages=route.batch_size,
            # AttributeNames, not its successor MessageSystemAttributeNames: every botocore from 1.34.0 (the
            # floor, and older than some Lambda runtimes' botocore) knows it, and SQS still honours it.
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            **kwargs,
        ).get("Messages", [])
        return [dict(m) for m in messages]

    def _process_pending(self, item: Pending) -> None:
        delivery = self._call(item.source, item.target, item.handler, item.event, item.attempt)
        if delivery.error is None:
            return
        if item.attempt <= item.retries:
            item.attempt += 1
            item.not_before = time.monotonic() + item.retry_delay
            self._enqueue(item)
        else:
            self.dead_letters.append(delivery)

    def _process_batch(self, route: SqsRoute, messages: list[dict[str, Any]]) -> None:
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
    """Tokens (or durable callback ids) an event carries, for observers' fingerprints (best effort)."""
    if source == "sqs":
        found = []
        for record in event.get("Records", []):
            with contextlib.suppress(ValueError, TypeError):
                token = _answerable(json.loads(record["body"]))
                if token:
                    found.append(token)
        return found
    if source == "sns":
        found = []
        for record in event.get("Records", []):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                token = _answerable(json.loads(record["Sns"]["Message"]))
                if token:
                    found.append(token)
        return found
    token = _answerable(event.get("detail") if source == "eventbridge" else event)
    return [token] if token else []


def _answerable(message: Any) -> str | None:
    """The task token in a message, else the durable callback id a worker would answer instead."""
    token = find_token(message)
    if token:
        return token
    path = find_callback_id_path(message)
    value = message[path[0]] if path else None
    return value if isinstance(value, str) and value else None
