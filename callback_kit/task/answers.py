"""Where an answer goes: one small object per backend that waits on a callback.

Two AWS services suspend work until someone answers a string they handed out:

* Step Functions, on a *task token* (``.waitForTaskToken`` tasks and activities): SendTaskSuccess,
  SendTaskFailure, SendTaskHeartbeat;
* Lambda durable functions, on a *callback id* (``context.wait_for_callback`` / ``create_callback``):
  SendDurableExecutionCallbackSuccess, ...Failure, ...Heartbeat.

An :class:`Answers` holds what differs between them and nothing else: the three calls and how their parameters are
spelled, which error codes mean "already closed" and which "not a string this service issued", the output limit,
and the shape of a failure. Retries, deadline bounds, rate limiting and heartbeat scheduling are written once, above
these objects (:class:`callback_kit.task.completion.Completer`), and so behave the same for both.

The durable API's error codes are read as Step Functions' are:

* ``CallbackTimeoutException`` ("expired or already closed") is *closed*, like ``TaskTimedOut``: acknowledged;
* ``TooManyRequestsException`` is a throttle and ``ServiceException`` a server fault: retried;
* ``ResourceNotFoundException`` and ``InvalidParameterValueException`` are taken like ``InvalidToken``: the id is
  not one Lambda knows (truncated, re-encoded, the wrong field picked), so the callback that really waits is
  still open and will wait until its timeout. Taking them for "closed" would acknowledge a message whose task
  nobody answered; the message is handed back instead, logged at ERROR, and ends in the DLQ where it can be seen;
* the ``KMS*`` codes are configuration faults, surfaced as undeliverable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from callback_kit.outcome import MAX_OUTPUT_BYTES, Failure
from callback_kit.sources.records import Kind
from callback_kit.sources.tokens import MAX_CALLBACK_ID_CHARS
from callback_kit.task.classify import CLOSED_CODES, CONFIG_FAULT_CODES, INVALID_TOKEN_CODE, REJECTED_CODES

#: The backends, by the name ``ck.current_task().kind`` reports.
KINDS: tuple[Kind, ...] = ("stepfunctions", "durable")

#: The largest ``Result`` of SendDurableExecutionCallbackSuccess: 1,048,576 bytes in botocore's model since 1.44
#: (262,144 from the API's first model, botocore 1.42.1, to 1.43). A botocore client checks its own model's limit
#: before sending, so :meth:`Answers.output_limit` reads the client's; this is the limit of a client without one.
MAX_DURABLE_RESULT_BYTES = 1_048_576


@dataclass(frozen=True)
class Answers:
    """One backend's calls, codes, limits and failure shape (see the module docstring).

    Example:
        >>> DURABLE.success_params("cb-1", '{"ok":true}')
        {'CallbackId': 'cb-1', 'Result': b'{"ok":true}'}
        >>> STEP_FUNCTIONS.method(STEP_FUNCTIONS.heartbeat_api)
        'send_task_heartbeat'
    """

    kind: Kind
    #: The service as log lines name it.
    service: str
    success_api: str
    failure_api: str
    heartbeat_api: str
    #: The answer's target is over (expired, stopped, answered before): acknowledge and move on.
    closed_codes: frozenset[str]
    #: The service did not issue this string: the real target still waits. A poison message, never "closed".
    not_issued_codes: frozenset[str]
    #: The request itself was refused: a success falls back to a failure so that the target is still answered.
    rejected_codes: frozenset[str]
    #: Configuration faults (KMS): surfaced loudly, never retried.
    config_fault_codes: frozenset[str]
    #: Codes retried besides the ones every backend retries (:data:`callback_kit.task.classify.TRANSIENT_CODES`).
    transient_codes: frozenset[str]
    #: The largest success output, in UTF-8 bytes.
    max_output_bytes: int
    #: The key of the string in each call's parameters.
    id_param: str
    #: The key of the output in the success call's parameters.
    output_param: str

    def method(self, api: str) -> str:
        """The client method that makes ``api`` (``SendTaskSuccess`` -> ``send_task_success``)."""
        name = _METHODS.get(api)
        if name is None:  # six names in all: worked out once each, as every call asks
            name = _METHODS[api] = "".join("_" + c.lower() if c.isupper() else c for c in api).lstrip("_")
        return name

    def output_limit(self, client: Any) -> int:
        """The largest success output, in UTF-8 bytes, that ``client`` sends.

        A botocore client refuses, before sending, a parameter over its own model's limit, and the installed
        botocore may predate the service's current limit (a durable ``Result`` took 256 KiB in botocore 1.42 and
        1.43, 1 MiB since 1.44). An output within the service's limit but over the client's would then never be
        sent, and its callback would wait until it timed out; over this limit, it is answered with a failure
        ``CallbackKit.OutputTooLarge`` instead. A client without botocore's model (a fake) takes
        :attr:`max_output_bytes`.

        Example:
            >>> DURABLE.output_limit(object()) == MAX_DURABLE_RESULT_BYTES
            True
        """
        try:
            shape = client.meta.service_model.operation_model(self.success_api).input_shape
            limit = shape.members[self.output_param].metadata["max"]
        except Exception:  # not a botocore client, or a model that does not say
            return self.max_output_bytes
        return limit if isinstance(limit, int) and limit > 0 else self.max_output_bytes

    def success_params(self, target: str, output: str) -> dict[str, Any]:
        """The parameters of a success call carrying ``output`` (a JSON document within the limit)."""
        if self.kind == "durable":
            return {"CallbackId": target, "Result": output.encode("utf-8")}
        return {"taskToken": target, "output": output}

    def failure_params(self, target: str, failure: Failure) -> dict[str, Any]:
        """The parameters of a failure call for ``failure`` (error name and cause as Step Functions takes them).

        A durable failure carries an ``Error`` object: ``ErrorType`` is the error name, and ``ErrorMessage`` and
        ``StackTrace`` are read out of a cause that follows Lambda's error convention (a plain-text cause, as a
        ``TaskFailed`` gives, is the message as it is).

        Example:
            >>> DURABLE.failure_params("cb", Failure("Order.Invalid", "negative total"))
            {'CallbackId': 'cb', 'Error': {'ErrorType': 'Order.Invalid', 'ErrorMessage': 'negative total'}}
        """
        if self.kind != "durable":
            return {"taskToken": target, "error": failure.error, "cause": failure.cause}
        error: dict[str, Any] = {"ErrorType": failure.error, "ErrorMessage": failure.cause}
        parsed = _lambda_error(failure.cause)
        if parsed is not None:
            message, stack = parsed
            error["ErrorMessage"] = message
            if stack:
                error["StackTrace"] = stack
        return {"CallbackId": target, "Error": error}

    def heartbeat_params(self, target: str) -> dict[str, Any]:
        """The parameters of a heartbeat call."""
        return {self.id_param: target}


_METHODS: dict[str, str] = {}


def _lambda_error(cause: str) -> tuple[str, list[str]] | None:
    """``(errorMessage, stackTrace lines)`` of a cause in Lambda's error JSON, or ``None`` for any other text."""
    if not cause.startswith("{"):
        return None
    try:
        document = json.loads(cause)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("errorMessage"), str):
        return None
    stack = document.get("stackTrace")
    lines: list[str] = []
    if isinstance(stack, list):
        # Each frame may span lines ("File ..., line n, in f\n    code\n"): the API takes one entry per line.
        for frame in stack:
            if isinstance(frame, str):
                lines.extend(line for line in frame.splitlines() if line.strip())
    return document["errorMessage"], lines


STEP_FUNCTIONS = Answers(
    kind="stepfunctions",
    service="Step Functions",
    success_api="SendTaskSuccess",
    failure_api="SendTaskFailure",
    heartbeat_api="SendTaskHeartbeat",
    closed_codes=CLOSED_CODES,
    not_issued_codes=frozenset({INVALID_TOKEN_CODE}),
    rejected_codes=REJECTED_CODES,
    config_fault_codes=CONFIG_FAULT_CODES,
    transient_codes=frozenset(),
    max_output_bytes=MAX_OUTPUT_BYTES,
    id_param="taskToken",
    output_param="output",
)

DURABLE = Answers(
    kind="durable",
    service="Lambda",
    success_api="SendDurableExecutionCallbackSuccess",
    failure_api="SendDurableExecutionCallbackFailure",
    heartbeat_api="SendDurableExecutionCallbackHeartbeat",
    closed_codes=frozenset({"CallbackTimeoutException"}),
    not_issued_codes=frozenset({"ResourceNotFoundException", "InvalidParameterValueException"}),
    # botocore checks the Result's size before sending, and callback-kit keeps within the client's limit
    # (output_limit): nothing is refused for its content that a failure callback could carry better.
    rejected_codes=frozenset(),
    config_fault_codes=frozenset(
        {"KMSAccessDeniedException", "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException"}
    ),
    transient_codes=frozenset({"ServiceException", "TooManyRequestsException"}),
    max_output_bytes=MAX_DURABLE_RESULT_BYTES,
    id_param="CallbackId",
    output_param="Result",
)

_BY_KIND = {a.kind: a for a in (STEP_FUNCTIONS, DURABLE)}
__all__ = ["DURABLE", "KINDS", "MAX_CALLBACK_ID_CHARS", "MAX_DURABLE_RESULT_BYTES", "STEP_FUNCTIONS", "Answers", "Kind"]


def answers_for(kind: str) -> Answers:
    """The backend of ``kind`` (``"stepfunctions"`` or ``"durable"``).

    Example:
        >>> answers_for("durable").success_api
        'SendDurableExecutionCallbackSuccess'

    Raises:
        ValueError: another kind.
    """
    try:
        return _BY_KIND[kind]  # type: ignore[index]
    except KeyError:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}") from None
