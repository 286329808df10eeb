"""The rules about what surrounds a callback task in a template: CK006, CK007 and CK009.

CK006 and CK007 hold for every SQS event source (a queue that redelivers a message still being worked on, or a
batch that is redelivered whole, runs a callback twice whatever the queue is for). CK009 looks at the workers of
the template's callback tasks and at every callback-kit function, so that unrelated asynchronous functions of a
large template are not reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from callback_kit.check.findings import Level
from callback_kit.check.template import Template

#: AWS's advice for SQS event sources: a visibility timeout of at least six times the function's timeout.
VISIBILITY_FACTOR = 6
#: ...and a redrive policy that gives a message at least five receives before the DLQ (throttling costs receives).
MIN_RECEIVE_COUNT = 5


@dataclass(frozen=True)
class InfraFinding:
    """A finding about a template resource."""

    where: str
    resource: str
    code: str
    level: Level
    message: str
    fix: str


def queue_rules(template: Template) -> Iterator[InfraFinding]:
    """CK006 and CK007 for every SQS event source of the template."""
    seen_queues: set[str] = set()
    for source in template.queue_sources:
        queue = template.queues.get(source.queue or "")
        function = template.functions.get(source.function or "")
        if not source.report_batch_item_failures:
            yield InfraFinding(
                source.where,
                source.resource,
                "CK007",
                "warning",
                "SQS event source without ReportBatchItemFailures: one record that fails redelivers the whole batch, "
                "so tasks already answered run again",
                "add FunctionResponseTypes: [ReportBatchItemFailures] (a callback-kit handler returns "
                "batchItemFailures)",
            )
        if queue is None or queue.logical_id in seen_queues:
            continue
        seen_queues.add(queue.logical_id)
        if not queue.has_dlq:
            yield InfraFinding(
                queue.logical_id,
                queue.logical_id,
                "CK007",
                "warning",
                f"queue feeding {source.function or 'a function'} has no RedrivePolicy: a message whose task cannot be "
                "answered is received again and again until its retention period ends, then silently dropped",
                "add RedrivePolicy: {deadLetterTargetArn: <a DLQ's Arn>, maxReceiveCount: 5}",
            )
        elif queue.max_receive_count is not None and queue.max_receive_count < MIN_RECEIVE_COUNT:
            yield InfraFinding(
                queue.logical_id,
                queue.logical_id,
                "CK007",
                "warning",
                f"maxReceiveCount {queue.max_receive_count:g}: a message that was only throttled or interrupted "
                "lands in the DLQ with its task unanswered",
                f"set maxReceiveCount to at least {MIN_RECEIVE_COUNT}",
            )
        if function is None or function.timeout is None or queue.visibility_timeout is None:
            continue
        visibility, timeout = queue.visibility_timeout, function.timeout
        if visibility < VISIBILITY_FACTOR * timeout:
            level: Level = "error" if visibility < timeout else "warning"
            consequence = (
                "a message becomes visible again while its worker still runs, and a second worker runs the same task"
                if visibility < timeout
                else "a throttled or retried batch can become visible again while a worker still holds it"
            )
            yield InfraFinding(
                queue.logical_id,
                queue.logical_id,
                "CK006",
                level,
                f"VisibilityTimeout {visibility:g} s is below {'' if level == 'error' else '6x '}the Timeout of "
                f"{function.logical_id} ({timeout:g} s): {consequence}",
                f"set VisibilityTimeout to at least {VISIBILITY_FACTOR * timeout:g} (6x the function's Timeout)",
            )


def async_rules(
    template: Template, workers: set[str], async_callers: dict[str, str], token_targets: set[str]
) -> Iterator[InfraFinding]:
    """CK009: EventBridge targets and asynchronously invoked workers without somewhere for failures to go.

    Args:
        workers: the functions that answer the template's callback tasks.
        async_callers: function -> what invokes it asynchronously (a state, for ``InvocationType: Event``).
        token_targets: the rule targets (``where``) that callback tasks' events reach.
    """
    watched = workers | {name for name, f in template.functions.items() if f.callback_kit}
    callers = dict(async_callers)
    for target in template.rule_targets:
        if target.function is not None:
            callers.setdefault(target.function, f"EventBridge rule {target.where.split('/Targets/')[0]}")
        elif not target.has_dlq and (
            target.where in token_targets or (target.queue is not None and _feeds(template, target.queue, watched))
        ):
            yield InfraFinding(
                target.where,
                target.resource,
                "CK009",
                "warning",
                "EventBridge target without a DeadLetterConfig: an event EventBridge cannot deliver is dropped after "
                "its retries, and the task whose token it carried waits until its timeout",
                "add DeadLetterConfig: {Arn: <an SQS queue's Arn>} to the target",
            )
    for topic, function in template.subscriptions:
        callers.setdefault(function, f"SNS topic {topic}")
    for name, caller in sorted(callers.items()):
        worker = template.functions.get(name)
        if worker is None or name not in watched or worker.async_failure_handled:
            continue
        yield InfraFinding(
            name,
            name,
            "CK009",
            "warning",
            f"invoked asynchronously ({caller}) with no on-failure destination or DLQ: an event whose task could not "
            "be answered is dropped after Lambda's two retries, and the task waits until its timeout",
            "add EventInvokeConfig: {DestinationConfig: {OnFailure: {Type: SQS, Destination: <DLQ Arn>}}} "
            "(or DeadLetterQueue)",
        )


def _feeds(template: Template, queue: str, functions: set[str]) -> bool:
    return any(s.queue == queue and s.function in functions for s in template.queue_sources)
