"""Hand-off worker: asks a person to approve a large order (``RequestApproval``, ``lambda:invoke.waitForTaskToken``).

It must not complete the task: a person does, later, by opening the approve or reject link of the message this
function publishes to the approvers' SNS topic. ``ck.hand_off()`` takes the token and tells callback_kit to send
nothing when the function returns; the links lead to the approval API (``approval_decision.py``), which completes
the task with ``ck.send_success`` / ``ck.send_failure``. Should publishing fail, the function raises and
callback_kit fails the task (the error is the exception's class name), so the order does not wait a day for an
approval request nobody received.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

import callback_kit as ck

#: The task counts and timings of docs/observability.md, one EMF document per invocation (namespace and service
#: from POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME, which template.yaml sets).
metrics = Metrics()

logger = Logger()

#: The approvers' SNS topic (e-mail subscriptions): set by template.yaml.
ENV_TOPIC = "APPROVAL_TOPIC_ARN"
#: The approval API's base URL (``https://{api}.execute-api.{region}.amazonaws.com/Prod``): set by template.yaml.
ENV_API_URL = "APPROVAL_API_URL"


class ApprovalRequest(BaseModel):
    """What the ``RequestApproval`` task sends, minus its token."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    order_id: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    total: str = Field(min_length=1)
    currency: str = Field(min_length=3, max_length=3)


def approval_links(token: str, api_url: str) -> dict[str, str]:
    """The approve and reject links for ``token`` (URL-encoded: a token holds ``+``, ``/`` and ``=``).

    Example:
        >>> approval_links("a+b/c=", "https://api.example/Prod")["approve"]
        'https://api.example/Prod/approval/approve?token=a%2Bb%2Fc%3D'
    """
    query = urllib.parse.urlencode({"token": token})
    base = api_url.rstrip("/")
    return {"approve": f"{base}/approval/approve?{query}", "reject": f"{base}/approval/reject?{query}"}


@ck.callback_handler(model=ApprovalRequest, metrics=metrics)
def handler(request: ApprovalRequest) -> None:
    """Publish an approval request for the order; a person completes the task later through the approval API."""
    topic, api_url = os.environ.get(ENV_TOPIC), os.environ.get(ENV_API_URL)
    if not topic or not api_url:
        raise RuntimeError(f"${ENV_TOPIC} and ${ENV_API_URL} must be set: nobody could be asked for approval")
    links = approval_links(ck.hand_off(), api_url)  # from here on, callback_kit sends nothing for this task
    message = (
        f"Order {request.order_id} from customer {request.customer_id} totals {request.total} {request.currency} "
        "and needs your approval.\n\n"
        f"Approve: {links['approve']}\n"
        f"Reject:  {links['reject']}\n\n"
        "Each link works once; the request expires after a day. Do not forward this message: the links are the key."
    )
    _sns().publish(TopicArn=topic, Subject=f"Approve order {request.order_id}?"[:100], Message=message)
    # The message holds the token: log only what identifies the request.
    logger.info(
        "approval requested",
        extra={"order_id": request.order_id, "token_fp": ck.current_task().token_fingerprint},
    )


def _sns() -> Any:
    import boto3

    return boto3.client("sns")
