"""SNS in the simulator: topics, queue subscriptions, and topics routed to handlers as SNS invokes Lambda.

``arn:aws:states:::sns:publish.waitForTaskToken`` publishes through moto's SNS. On AWS the message then
reaches either a queue subscribed to the topic (its body the SNS envelope, or the bare message with raw
delivery) or a subscribed function, which SNS invokes asynchronously with a ``Records[].Sns`` event whose
``Message`` is a JSON *string*. :class:`Notifying` adds both, building the Lambda event from the envelope moto
delivers to a queue of its own.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

from callback_kit.simulator.delivery import SqsRoute
from callback_kit.simulator.invoke import Invoking
from callback_kit.simulator.records import LambdaHandler, Queue

__all__ = ["Notifying", "sns_lambda_event"]

_counter = itertools.count(1)


def sns_lambda_event(envelope: Mapping[str, Any], subscription_arn: str) -> dict[str, Any]:
    """Turn an SNS envelope (what SNS puts in an SQS body) into the event SNS invokes a Lambda function with.

    Example:
        >>> envelope = {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:1:t",
        ...             "Message": '{"TaskToken": "t-1"}', "Timestamp": "2024-01-01T00:00:00.000Z"}
        >>> record = sns_lambda_event(envelope, "arn:aws:sns:us-east-1:1:t:sub")["Records"][0]
        >>> record["EventSource"], record["Sns"]["Message"]
        ('aws:sns', '{"TaskToken": "t-1"}')
    """
    attributes = {
        name: {"Type": value.get("Type"), "Value": value.get("Value")}
        for name, value in (envelope.get("MessageAttributes") or {}).items()
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope.get("MessageId"),
                    "TopicArn": envelope.get("TopicArn"),
                    "Subject": envelope.get("Subject"),
                    "Message": envelope.get("Message"),
                    "Timestamp": envelope.get("Timestamp"),
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature"),
                    # The envelope spells these URL, the Lambda event Url.
                    "SigningCertUrl": envelope.get("SigningCertURL", envelope.get("SigningCertUrl")),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL", envelope.get("UnsubscribeUrl")),
                    "MessageAttributes": attributes,
                },
            }
        ]
    }


class Notifying(Invoking):
    """Topics and subscriptions; a base of :class:`~callback_kit.simulator.LocalStepFunctions`."""

    @property
    def sns(self) -> Any:
        """An SNS client bound to the simulator (typed ``Any``: the project does not depend on SNS stubs)."""
        return self._client("sns")

    def create_topic(self, name: str) -> str:
        """Create an SNS topic and return its ARN.

        Example:
            >>> topic_arn = sim.create_topic("approvals")                    # doctest: +SKIP
        """
        return str(self.sns.create_topic(Name=name)["TopicArn"])

    def subscribe_queue(self, topic_arn: str, queue: Queue, *, raw: bool = False) -> str:
        """Subscribe ``queue`` to the topic; return the subscription ARN.

        Without ``raw`` each SQS body is the SNS envelope (``Type: Notification``, the message a JSON string
        under ``Message``); with ``raw`` (``RawMessageDelivery``) it is the message itself. Route the queue
        with :meth:`route_sqs` to see what a Lambda behind it receives.

        Example:
            >>> sim.subscribe_queue(topic_arn, q)                            # doctest: +SKIP
            >>> sim.route_sqs(q, handler)  # doctest: +SKIP
        """
        attributes = {"RawMessageDelivery": "true"} if raw else {}
        response = self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue.arn, Attributes=attributes)
        return str(response["SubscriptionArn"])

    def route_sns(self, topic_arn: str, handler: LambdaHandler, *, retries: int = 2, retry_delay: float = 0.0) -> str:
        """Deliver the topic's messages to ``handler`` as SNS invokes a subscribed Lambda function.

        The handler gets ``{"Records": [{"EventSource": "aws:sns", "Sns": {..., "Message": "<JSON string>"}}]}``,
        one record per message, asynchronously: when it raises, it is called again up to ``retries`` times,
        ``retry_delay`` seconds apart, then the delivery is kept in :attr:`dead_letters`. The pump delivers it.

        Returns:
            The subscription ARN (the records' ``EventSubscriptionArn``).

        Example:
            >>> sim.route_sns(sim.create_topic("approvals"), notify_approver)  # doctest: +SKIP
        """
        topic_name = topic_arn.rsplit(":", 1)[-1]
        # moto's SNS delivers to queues only: a queue of the simulator's own stands for the function's subscription.
        queue_name = re.sub(r"[^A-Za-z0-9_-]", "-", f"sns-{topic_name}-lambda-{next(_counter)}")[:80]
        queue = self.create_queue(queue_name)
        subscription_arn = self.subscribe_queue(topic_arn, queue)

        def convert(message: Mapping[str, Any]) -> Any:
            return sns_lambda_event(json.loads(message["Body"]), subscription_arn)

        self._sqs_routes.append(
            SqsRoute(
                queue,
                handler,
                async_source="sns",
                convert=convert,
                target=topic_name,
                retries=retries,
                retry_delay=retry_delay,
            )
        )
        return subscription_arn
