"""SQS worker: answers the ``CheckOrder`` task (``sqs:sendMessage.waitForTaskToken``) and the durable order's callback.

Two kinds of message come on OrderQueue: the state machine's ``{"TaskToken": ..., "order": {...}}`` and the
durable function's (durable_order.py) ``{"callbackId": ..., "order": {...}}``. callback_kit tells them apart and
answers each through its own API (SendTask* or SendDurableExecutionCallback*); the function sees only the order
either way. It rejects orders that cannot be fulfilled with a named failure (a Catch matches it; the durable
function reads it as a callback failure), and says whether a person must approve the order and which age check,
if any, it needs.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, TypedDict

from aws_lambda_powertools import Metrics
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

import callback_kit as ck

#: The task counts and timings of docs/observability.md, one EMF document per invocation (namespace and service
#: from POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME, which template.yaml sets).
metrics = Metrics()

#: Orders above this total need a manual sales process, not this workflow.
MAX_ORDER_TOTAL = Decimal("5000.00")
#: Orders above this total wait for a person's approval (the ``RequestApproval`` hand-off step).
APPROVAL_THRESHOLD = Decimal("1000.00")


class OrderItem(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    sku: str = Field(min_length=1)
    quantity: int = Field(ge=1)
    unit_price: Decimal = Field(ge=0)
    age_restricted: bool = False


class Order(BaseModel):
    """The order the state machine hands to ``CheckOrder``."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    order_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    delivery: Literal["shipping", "pickup"] = "shipping"
    items: list[OrderItem]


class OrderApproval(TypedDict):
    """The task output; ``approval`` and ``ageCheck`` drive the state machine's Choices."""

    status: Literal["approved"]
    orderId: str
    total: str
    currency: str
    approval: Literal["none", "manual"]
    ageCheck: Literal["none", "online", "in_store"]


@ck.callback_handler(model=Order, payload_path="order", metrics=metrics)
def handler(order: Order) -> OrderApproval:
    """Approve an order, or fail the task with ``Order.Rejected``."""
    if not order.items:
        raise ck.TaskFailed(f"order {order.order_id} has no items", error="Order.Rejected")
    total = sum((item.unit_price * item.quantity for item in order.items), Decimal(0))
    if total > MAX_ORDER_TOTAL:
        raise ck.TaskFailed(
            f"order {order.order_id} totals {total} {order.currency}, above the {MAX_ORDER_TOTAL} limit",
            error="Order.Rejected",
        )
    age_check: Literal["none", "online", "in_store"] = "none"
    if any(item.age_restricted for item in order.items):
        # Pickups are checked by staff at the store (the activity worker); deliveries online, before shipping.
        age_check = "in_store" if order.delivery == "pickup" else "online"
    return {
        "status": "approved",
        "orderId": order.order_id,
        "total": f"{total:.2f}",
        "currency": order.currency,
        "approval": "manual" if total > APPROVAL_THRESHOLD else "none",
        "ageCheck": age_check,
    }
