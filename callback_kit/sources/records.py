"""What the sources produce: one :class:`TaskRecord` per task found in an event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Source: TypeAlias = Literal["sqs", "sns", "eventbridge", "direct", "activity"]
SOURCES: tuple[Source, ...] = ("sqs", "sns", "eventbridge", "direct", "activity")

#: What an SQS body can hold around the message: an SNS notification or an EventBridge event.
Envelope: TypeAlias = Literal["sns", "eventbridge"]


@dataclass(frozen=True)
class TaskRecord:
    """One task to run, as found in an event.

    Attributes:
        source: where it came from.
        token: the task token, or ``None`` when there is no usable one (the message must be redelivered).
        payload: what the user function receives (before ``model=`` validation).
        record_id: the SQS message id, the SNS message id or the EventBridge event id, for logs and batch item
            failures (for an SQS record always the SQS message id, whatever its body held).
        group_id: the FIFO message group, which keeps its records in order.
        execution_arn: the waiting execution, where the event says it.
        problem: why the record cannot run; with a token, it is answered with a failure callback.
        envelope: what was unwrapped to reach the message inside an SQS body (``"sns"``: an SNS notification,
            ``"eventbridge"``: an EventBridge event), or ``None``.
        trace_header: the SQS record's ``AWSTraceHeader`` attribute (X-Ray format), which its span links to.
        traceparent: a W3C ``traceparent`` the message carries (a ``traceparent`` key, or an SQS message attribute).

    Example:
        >>> TaskRecord("sqs", "tok", {"n": 1}, record_id="m-1", envelope="sns").envelope
        'sns'
    """

    source: Source
    token: str | None
    payload: Any = None
    record_id: str | None = None
    group_id: str | None = None
    execution_arn: str | None = None
    problem: str | None = None
    envelope: Envelope | None = None
    trace_header: str | None = None
    traceparent: str | None = None
