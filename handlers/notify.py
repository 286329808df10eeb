"""EventBridge worker: answers the ``NotifyCustomer`` task (``events:putEvents.waitForTaskToken``).

"Notify and wait": the event's ``detail`` carries the token, the order and the customer; the worker sends the
notification (here: records it) and answers with an acknowledgement the execution keeps as its output.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal, TypedDict

from aws_lambda_powertools import Logger, Metrics
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

import callback_kit as ck

#: The task counts and timings of docs/observability.md, one EMF document per invocation (namespace and service
#: from POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME, which template.yaml sets).
metrics = Metrics()

logger = Logger()

#: Namespace for notification ids: the same order and customer always get the same id, so a redelivered event
#: (EventBridge and async Lambda deliver at least once) records the same notification rather than a second one.
NOTIFICATION_NAMESPACE = uuid.UUID("6f1c7f5e-2d43-4a8e-9a39-3c1f0f7e2b11")


class Customer(BaseModel):
    """The customer to notify, as the state machine's input holds it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    customer_id: str = Field(min_length=1)
    email: str | None = None


class Notification(BaseModel):
    """The ``detail`` of the ``OrderReadyForCustomer`` event, minus its token."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    order_id: str = Field(min_length=1)
    customer: Customer
    message: str = Field(min_length=1)


class Acknowledgement(TypedDict):
    """The task output."""

    notificationId: str
    orderId: str
    channel: Literal["email"]
    acknowledged: bool
    sentAt: str


@ck.callback_handler(model=Notification, metrics=metrics)
def handler(notification: Notification) -> Acknowledgement:
    """Notify the customer by email, or fail the task with ``Notify.NoRecipient``."""
    customer = notification.customer
    if not customer.email:
        raise ck.TaskFailed(f"customer {customer.customer_id} has no email address", error="Notify.NoRecipient")
    notification_id = uuid.uuid5(NOTIFICATION_NAMESPACE, f"{notification.order_id}/{customer.customer_id}")
    # A real worker would call its mail service here; the example records the notification in its log.
    logger.info(
        "notification sent",
        extra={"notification_id": str(notification_id), "order_id": notification.order_id},
    )
    return {
        "notificationId": str(notification_id),
        "orderId": notification.order_id,
        "channel": "email",
        "acknowledged": True,
        "sentAt": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
