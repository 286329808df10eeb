"""Lambda durable functions, offline: AWS's local runner presented as Lambda, and a queue that feeds the worker.

moto has no durable execution API. AWS's ``aws-durable-execution-sdk-python-testing`` runs a durable function in
process (``DurableFunctionTestRunner``) and answers its callbacks (``send_callback_success/failure/heartbeat``).
Two pieces make it stand in for Lambda in tests:

* :class:`RunnerLambdaClient` is what a worker's ``lambda_client=`` is given: the three
  ``send_durable_execution_callback_*`` methods of a boto3 ``lambda`` client, answering with Lambda's error codes
  as botocore ``ClientError``\\ s. The runner's divergences are absorbed here, never in the library: it answers a
  callback that is already closed (answered, timed out, its execution over) with ``ResourceNotFoundException``
  ("not in STARTED state", "is not active") where Lambda answers ``CallbackTimeoutException``, and it does not
  enforce the ``Result`` limit.
* :class:`CallbackQueue` is an SQS queue as Lambda's event source mapping reads it: what a durable function's
  submitter sends is delivered to a worker handler in SQS event shape, batch item failures are redelivered,
  and a message received ``max_receive_count`` times goes to :attr:`CallbackQueue.dead_letters`.

Only the runner's public API is used (``DurableFunctionTestRunner``'s methods, its ``exceptions`` module and the
SDK's ``ErrorObject``); tests/durable/test_runner_contract.py checks each behaviour relied on.

Example (needs Python >= 3.11 and the ``test`` extra)::

    queue = CallbackQueue()

    @durable_execution
    def order(event, context):
        return context.wait_for_callback(lambda cid, _: queue.send({"callbackId": cid, **event}))

    with DurableFunctionTestRunner(handler=order) as runner:
        worker = check.with_options(lambda_client=RunnerLambdaClient(runner))
        queue.route(worker)
        with queue.pumping():
            result = runner.run(input='{"total": 12}')
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from callback_kit.task.answers import MAX_DURABLE_RESULT_BYTES
from callback_kit.testing import FakeLambdaContext, sqs_event
from callback_kit.testing.fake_sfn import client_error

__all__ = ["CallbackQueue", "RunnerLambdaClient"]

#: How the runner words "this callback is no longer waiting" (answered, timed out, or its execution ended).
CLOSED_MESSAGES = ("not in STARTED state", "is not active")


class RunnerLambdaClient:
    """A ``DurableFunctionTestRunner`` seen as a boto3 ``lambda`` client's durable callback methods.

    Args:
        runner: the runner the durable function runs on.
    """

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        #: Every call received: ``(api, answered code or "ok")``; the callback id is not kept.
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def send_durable_execution_callback_success(self, *, CallbackId: str, Result: bytes = b"") -> dict[str, Any]:
        """SendDurableExecutionCallbackSuccess."""
        if len(Result) > MAX_DURABLE_RESULT_BYTES:  # Lambda refuses it; the runner would take it
            return self._refuse("SendDurableExecutionCallbackSuccess", "InvalidParameterValueException")
        return self._call("SendDurableExecutionCallbackSuccess", self.runner.send_callback_success, CallbackId, Result)

    def send_durable_execution_callback_failure(
        self,
        *,
        CallbackId: str,
        Error: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """SendDurableExecutionCallbackFailure."""
        from aws_durable_execution_sdk_python.lambda_service import ErrorObject

        error = ErrorObject.from_dict(dict(Error or {}))
        return self._call("SendDurableExecutionCallbackFailure", self.runner.send_callback_failure, CallbackId, error)

    def send_durable_execution_callback_heartbeat(self, *, CallbackId: str) -> dict[str, Any]:
        """SendDurableExecutionCallbackHeartbeat."""
        return self._call("SendDurableExecutionCallbackHeartbeat", self.runner.send_callback_heartbeat, CallbackId)

    def _call(self, api: str, send: Callable[..., Any], *args: Any) -> dict[str, Any]:
        from aws_durable_execution_sdk_python_testing import exceptions

        try:
            send(*args)
        except exceptions.ResourceNotFoundException as exc:
            closed = any(words in str(exc) for words in CLOSED_MESSAGES)
            return self._refuse(api, "CallbackTimeoutException" if closed else "ResourceNotFoundException")
        except exceptions.AwsApiException as exc:
            return self._refuse(api, type(exc).__name__)
        with self._lock:
            self.calls.append((api, "ok"))
        return {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _refuse(self, api: str, code: str) -> dict[str, Any]:
        with self._lock:
            self.calls.append((api, code))
        # The runner's message quotes the callback id: Lambda's answer is given without it.
        raise client_error(api, code, f"{code} (local durable runner)", status=_STATUS.get(code, 400))


_STATUS = {"ServiceException": 500, "TooManyRequestsException": 429, "ResourceNotFoundException": 404}


@dataclass
class _Message:
    message_id: str
    body: str
    receive_count: int = 0
    visible_at: float = 0.0


@dataclass
class CallbackQueue:
    """An SQS queue delivered to a worker handler as Lambda's event source mapping delivers it.

    Attributes:
        visibility_timeout: seconds before a message handed back (a batch item failure) is delivered again.
        max_receive_count: deliveries before a message goes to :attr:`dead_letters` (the redrive policy).
        batch_size: records per event at most.
    """

    visibility_timeout: float = 0.2
    max_receive_count: int = 5
    batch_size: int = 10
    #: Messages received ``max_receive_count`` times without being acknowledged (their bodies).
    dead_letters: list[str] = field(default_factory=list)
    #: Every message id delivered and acknowledged, in order.
    acknowledged: list[str] = field(default_factory=list)
    _messages: list[_Message] = field(default_factory=list, repr=False)
    _handler: Callable[[Any, Any], Any] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, message: Any) -> str:
        """Queue ``message`` (a dict is sent as its JSON) and return its message id."""
        body = message if isinstance(message, str) else json.dumps(message)
        message_id = str(uuid.uuid4())
        with self._lock:
            self._messages.append(_Message(message_id, body))
        return message_id

    def route(self, handler: Callable[[Any, Any], Any]) -> None:
        """Deliver this queue's messages to ``handler(event, context)`` (a decorated worker)."""
        self._handler = handler

    def depth(self) -> int:
        """Messages in the queue, visible or not."""
        with self._lock:
            return len(self._messages)

    def deliver_once(self) -> int:
        """Deliver one batch of the visible messages, if any and if routed; how many were delivered."""
        handler = self._handler
        now = time.monotonic()
        with self._lock:
            batch = [m for m in self._messages if m.visible_at <= now][: self.batch_size]
            for message in batch:
                message.receive_count += 1
                message.visible_at = now + self.visibility_timeout
        if handler is None or not batch:
            return 0
        event = {"Records": [_record(m) for m in batch]}
        try:
            response = handler(event, FakeLambdaContext())
            failed = {f["itemIdentifier"] for f in (response or {}).get("batchItemFailures", [])}
        except Exception:  # the whole batch goes back, as Lambda does when the function raises
            failed = {m.message_id for m in batch}
        with self._lock:
            for message in batch:
                if message.message_id not in failed:
                    self._messages.remove(message)
                    self.acknowledged.append(message.message_id)
                elif message.receive_count >= self.max_receive_count:
                    self._messages.remove(message)
                    self.dead_letters.append(message.body)
        return len(batch)

    @contextlib.contextmanager
    def pumping(self, interval: float = 0.02) -> Iterator[CallbackQueue]:
        """Deliver in a background thread for the block, as the event source mapping polls."""
        stop = threading.Event()

        def pump() -> None:
            while not stop.is_set():
                if not self.deliver_once():
                    stop.wait(interval)

        thread = threading.Thread(target=pump, name="callback-queue-pump", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()


def _record(message: _Message) -> dict[str, Any]:
    """The SQS record Lambda delivers for ``message``: the testing helpers' record, with this delivery's ids."""
    record: dict[str, Any] = sqs_event(message.body, queue="durable-callbacks")["Records"][0]
    record["messageId"] = message.message_id
    record["attributes"]["ApproximateReceiveCount"] = str(message.receive_count)
    return record
