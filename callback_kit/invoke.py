"""Run a Lambda handler (or an activity function) on one event offline, and say what it would have answered.

The docker-less stand-in for ``sam local invoke`` behind ``callback-kit invoke``: the handler runs in this process
against :class:`~callback_kit.testing.FakeStepFunctions` (and, for Lambda durable callback ids,
:class:`~callback_kit.testing.FakeDurableCallbacks`), which open a task or callback for every token or id in the
event and record the answers, so nothing reaches AWS.

Example:
    >>> import io, callback_kit as ck
    >>> @ck.callback_handler
    ... def handler(payload: dict) -> dict:
    ...     return {"seen": payload["n"]}
    >>> out = io.StringIO()
    >>> invoke(handler, {"token": "t-1", "n": 7}, out=out)
    0
    >>> print(out.getvalue().splitlines()[0])  # doctest: +ELLIPSIS
    task tok-... (direct): SendTaskSuccess
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import IO, Any

from callback_kit.exceptions import CallbackKitError
from callback_kit.handler import CallbackHandler, HandlerOptions, process_event
from callback_kit.logs import fingerprint
from callback_kit.sources import TaskRecord, parse_event
from callback_kit.testing import FakeDurableCallbacks, FakeLambdaContext, FakeStepFunctions

#: The ARN an activity-shaped event is said to come from (it is never called).
INVOKE_ACTIVITY_ARN = "arn:aws:states:us-east-1:123456789012:activity:callback-kit-invoke"


def is_activity_task(event: Any) -> bool:
    """Whether ``event`` is a GetActivityTask response: ``taskToken`` and a string ``input``, nothing else."""
    return (
        isinstance(event, Mapping)
        and isinstance(event.get("input"), str)
        and "taskToken" in event
        and set(event) <= {"taskToken", "input", "ResponseMetadata"}
    )


def invoke(
    target: Callable[[Any], Any],
    event: Any,
    *,
    out: IO[str],
    remaining_ms: int = 900_000,
    sfn: FakeStepFunctions | None = None,
) -> int:
    """Run ``target`` on ``event`` against an in-memory Step Functions and print every callback it sent.

    ``target`` is a ``@ck.callback_handler`` (its options are kept, its client replaced) or a plain function.

    Returns:
        0 when every task in the event got exactly one callback, 1 when a record got none (Lambda would
        redeliver it).
    """
    sfn = sfn if sfn is not None else FakeStepFunctions()
    options = target.options if isinstance(target, CallbackHandler) else HandlerOptions.resolve()
    fn = target.fn if isinstance(target, CallbackHandler) else target
    if is_activity_task(event):
        return _invoke_activity(target, event, sfn, out, options)
    records = parse_event(
        event, source=options.source, token_path=options.token_path, payload_path=options.payload_path
    )
    lam = FakeDurableCallbacks()
    for record in records:
        if record.token is not None and record.kind == "durable":
            lam.open_callback(record.token)
        elif record.token is not None:
            sfn.open_task(record.token)
    kwargs = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
    # None means "off" once resolved, but "use the default" to resolve(): say "off" explicitly.
    kwargs.update(client=sfn, lambda_client=lam, heartbeat_interval=options.heartbeat_interval or 0)
    raised: Exception | None = None
    response: Any = None
    try:
        response = process_event(event, FakeLambdaContext(remaining_ms=remaining_ms), fn, **kwargs)
    except CallbackKitError as exc:
        raised = exc
    failures = (response or {}).get("batchItemFailures") if isinstance(response, Mapping) else None
    handed_back = {f.get("itemIdentifier") for f in failures or []}
    acknowledged = [r for r in records if raised is None and r.record_id not in handed_back]
    answered = _print_callbacks(sfn, records, out, acknowledged, lam)
    if raised is not None:
        _print(out, f"handler raised {type(raised).__name__}: {raised}  (Lambda would retry the event)")
    else:
        _print(out, "handler returned: " + json.dumps(response))
    ok = answered and raised is None and not failures
    return 0 if ok else 1


def _invoke_activity(
    target: Callable[[Any], Any], event: Mapping[str, Any], sfn: FakeStepFunctions, out: IO[str], options: Any
) -> int:
    from callback_kit.activity import ActivityWorker
    from callback_kit.sources import parse_activity_task

    record = parse_activity_task(event.get("taskToken"), event.get("input"))
    if record.token is not None:
        sfn.open_task(record.token)
    worker = ActivityWorker(INVOKE_ACTIVITY_ARN, target, client=sfn, heartbeat_interval=options.heartbeat_interval or 0)
    result = worker.run_one(event)
    answered = _print_callbacks(sfn, [record], out)
    _print(out, f"activity task: {result.status.value}")
    return 0 if answered else 1


def _print_callbacks(
    sfn: FakeStepFunctions,
    records: list[TaskRecord],
    out: IO[str],
    acknowledged: list[TaskRecord] | None = None,
    lam: FakeDurableCallbacks | None = None,
) -> bool:
    """Print what each record's task was answered with; True when each got exactly one answer (or was handed off)."""
    all_answered = True
    for record in records:
        where = record.source + (f" {record.record_id}" if record.record_id else "")
        if record.token is None:
            _print(out, f"record ({where}): no usable task token: {record.problem}; no callback possible")
            all_answered = False
            continue
        service: Any = lam if record.kind == "durable" and lam is not None else sfn
        answers = [c for c in service.calls_for(record.token) if c.result == "ok" and "Heartbeat" not in c.api]
        beats = service.heartbeats(record.token)
        head = ("callback" if service is lam else "task") + f" {fingerprint(record.token)} ({where})"
        if not answers and any(r is record for r in acknowledged or []):
            # Acknowledged with nothing sent: the function called ck.hand_off(); whoever holds the token answers.
            _print(out, f"{head}: handed off (ck.hand_off()): nothing sent; whoever holds the token completes it")
            continue
        if len(answers) != 1:
            _print(out, f"{head}: {len(answers)} callbacks sent" + (" (would be redelivered)" if not answers else ""))
            all_answered = False
        for call in answers:
            _print(out, f"{head}: {call.api}" + (f" after {beats} heartbeat(s)" if beats else ""))
            if call.api == "SendTaskSuccess":
                _print(out, _indent(_pretty(call.params["output"])))
            elif call.api == "SendTaskFailure":
                _print(out, f"  error: {call.params['error']}")
                _print(out, "  cause: " + _pretty(call.params["cause"]).replace("\n", "\n  "))
            elif "Error" in call.params:  # SendDurableExecutionCallbackFailure
                error = call.params["Error"]
                _print(out, f"  error: {error.get('ErrorType')}")
                _print(out, f"  message: {error.get('ErrorMessage')}")
            else:  # SendDurableExecutionCallbackSuccess: the result is JSON bytes
                _print(out, _indent(_pretty(call.params["Result"].decode("utf-8", errors="replace"))))
    return all_answered


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _print(out: IO[str], text: str) -> None:
    print(text, file=out, flush=True)
