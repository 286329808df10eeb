"""What users need to test their own handlers: an in-memory Step Functions, a Lambda context, event builders.

Example:
    >>> import callback_kit as ck
    >>> from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, sqs_event
    >>> sfn = FakeStepFunctions()
    >>> @ck.callback_handler(client=sfn, heartbeat_interval=0)
    ... def handler(order: dict) -> dict:
    ...     return {"approved": order["total"] < 100}
    >>> token = sfn.open_task()
    >>> handler(sqs_event({"TaskToken": token, "total": 12}), FakeLambdaContext())
    {'batchItemFailures': []}
    >>> sfn.outcome(token)
    ('success', {'approved': True})
"""

from __future__ import annotations

from callback_kit.testing.events import (
    ACCOUNT,
    REGION,
    FakeLambdaContext,
    direct_event,
    eventbridge_event,
    sns_event,
    sns_notification,
    sqs_event,
)
from callback_kit.testing.fake_durable import FakeDurableCallbacks
from callback_kit.testing.fake_sfn import Call, FakeStepFunctions, client_error

__all__ = [
    "ACCOUNT",
    "REGION",
    "Call",
    "FakeDurableCallbacks",
    "FakeLambdaContext",
    "FakeStepFunctions",
    "client_error",
    "direct_event",
    "eventbridge_event",
    "sns_event",
    "sns_notification",
    "sqs_event",
]
