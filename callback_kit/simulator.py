"""Run real state machines offline on moto's Step Functions simulator, with in-process workers.

This is the harness behind the project's end-to-end tests, the local demo and the pytest fixture shipped
to users. Inside a :class:`LocalStepFunctions` block, moto runs the Amazon States Language for real: a
``.waitForTaskToken`` task sends its SQS message or EventBridge event through moto's own SQS/EventBridge,
waits for SendTaskSuccess/SendTaskFailure, enforces ``HeartbeatSeconds``/``TimeoutSeconds`` with real
timers and runs Catch. The harness then plays the part of Lambda: it receives what the state machine sent
and hands it to plain ``handler(event, context)`` callables, in the exact shape Lambda would deliver.

moto is a test/dev extra only, so it is imported lazily; importing this module costs nothing more than boto3.

Where moto differs from AWS, and what the harness does about it (checked with moto 5.2.5):

* ``lambda:invoke.waitForTaskToken``: the ``awslambda-simple`` backend does not run code. The harness swaps
  the ``invoke`` method of that backend's instance for this account and region (the one seam moto itself
  documents for the simple backend) and queues the invocation for the pump. It does not run the handler
  inside ``invoke``: moto sets up the task's heartbeat endpoint only after ``invoke`` returns, so a
  heartbeat sent during it gets ``InvalidToken`` and a callback sent during it is lost when the task has
  ``HeartbeatSeconds`` (observed: States.Timeout). Because the handler runs after the invoke has answered,
  a handler that raises cannot fail the invoke as a synchronous Lambda call does on AWS (error name = the
  ``errorType``); the harness emulates that by sending SendTaskFailure with Lambda's error JSON as the cause
  to the token it finds in the payload (see :data:`TOKEN_KEYS`).
* EventBridge envelopes that moto puts on an SQS target lack the ``account`` field; the harness adds it.
* Activities (GetActivityTask) are not implemented by moto; :meth:`LocalStepFunctions.create_activity`
  works, polling does not.
* SendTaskHeartbeat on a task without ``HeartbeatSeconds`` answers ``InvalidToken`` (AWS accepts it), and a
  token of a closed task answers ``InvalidToken`` rather than ``TaskTimedOut``.
* ``TimeoutSeconds`` defaults to 60 s in moto (AWS: 99,999,999 s); tests should always set it.
* The ``cause`` of SendTaskFailure is dropped for SQS/EventBridge tasks; size limits are not enforced.
* Unnamed executions all get the same name, so :meth:`LocalStepFunctions.start_execution` always names them.
* moto logs a long trace for every failed state; the harness quiets ``moto`` loggers while it runs.

Example:
    >>> with LocalStepFunctions() as sim:                                    # doctest: +SKIP
    ...     queue = sim.create_queue("work")
    ...     sim.route_sqs(queue, handler)
    ...     arn = sim.create_state_machine("flow", definition)
    ...     with sim.pump():
    ...         result = sim.wait_for_execution(sim.start_execution(arn, {"n": 1}), timeout=3)
    ...     assert result["status"] == "SUCCEEDED"
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_stepfunctions import SFNClient

__all__ = [
    "TERMINAL_STATUSES",
    "TOKEN_KEYS",
    "CallbackCall",
    "Delivery",
    "ExecutionEvent",
    "ExecutionWatcher",
    "LambdaHandler",
    "LocalStepFunctions",
    "Queue",
    "format_event",
    "substitute",
    "token_fingerprint",
]

LambdaHandler = Callable[[Any, Any], Any]
"""A Lambda entry point: ``handler(event, context) -> response``."""

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})

TOKEN_KEYS: tuple[str, ...] = ("TaskToken", "taskToken", "MyTaskToken", "token", "Token", "task_token")
"""Keys under which the harness looks for a task token (also ``context.Task.Token``), in this order."""

_MOTO_MISSING = "moto is needed for the local Step Functions simulator: pip install 'callback-kit[test]'"
_ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SFN",
    "AWS_ENDPOINT_URL_SQS",
)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")
_log = logging.getLogger(__name__)


def token_fingerprint(token: str) -> str:
    """Return a short, stable, non-reversible name for a task token, safe to print and log.

    Example:
        >>> token_fingerprint("abc")
        'tok-ba7816bf8f01'
    """
    # Same scheme as the library's log lines, so the demo's fingerprints match what the workers log.
    return "tok-" + hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()[:12]


def _find_token(payload: Any) -> str | None:
    """Find a task token in a payload under the keys of :data:`TOKEN_KEYS` or at ``context.Task.Token``."""
    if not isinstance(payload, Mapping):
        return None
    for key in TOKEN_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    task = payload.get("context", {})
    task = task.get("Task", {}) if isinstance(task, Mapping) else {}
    value = task.get("Token") if isinstance(task, Mapping) else None
    return value if isinstance(value, str) and value else None


def _redact(value: Any) -> Any:
    """Replace every string under a key that names a token by its fingerprint (history shows raw tokens)."""
    if isinstance(value, Mapping):
        return {
            k: token_fingerprint(v) if isinstance(v, str) and "token" in k.lower() else _redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


class _FakeLambdaContext:
    """Minimal Lambda context; ``callback_kit.testing.FakeLambdaContext`` is the canonical one."""

    def __init__(self, function_name: str, region: str, account_id: str, timeout_s: float = 30.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = 128
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# ----------------------------------------------------------------------------------------------------------
# Records handed to observers
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    """An SQS queue created in the simulator.

    Example:
        >>> q = Queue(name="work", url="https://sqs/x", arn="arn:aws:sqs:us-east-1:1:work", fifo=False)
    """

    name: str
    url: str
    arn: str
    fifo: bool


@dataclass(frozen=True)
class Delivery:
    """One call of a handler by the harness, as observers see it.

    Attributes:
        source: ``"sqs"``, ``"eventbridge"`` or ``"lambda"``.
        target: the queue name or function name the event came from.
        event: the event passed to the handler.
        result: what the handler returned (``None`` when it raised).
        error: the exception it raised, if any.
        attempt: 1 for the first delivery of this event, 2+ for retries.
        tokens: fingerprints of the tokens found in the event.
        seconds: how long the call took.

    Example:
        >>> sim.on_delivery(lambda d: print(d.describe()))                   # doctest: +SKIP
    """

    source: str
    target: str
    event: Any
    result: Any
    error: BaseException | None
    attempt: int
    tokens: tuple[str, ...]
    seconds: float

    def describe(self) -> str:
        """One readable line, with token fingerprints only."""
        what = f"raised {type(self.error).__name__}: {self.error}" if self.error else f"returned {self.result!r}"
        retry = f" (attempt {self.attempt})" if self.attempt > 1 else ""
        where = f"{self.source}:{self.target} {', '.join(self.tokens)}{retry}"
        return f"handler <- {where}: {what} [{self.seconds:.2f}s]"


@dataclass(frozen=True)
class CallbackCall:
    """A SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat seen by the simulator, from any client.

    Example:
        >>> sim.on_callback(lambda c: print(c.describe()))                   # doctest: +SKIP
    """

    kind: Literal["success", "failure", "heartbeat"]
    token: str  # a fingerprint, never the raw token
    output: str | None = None
    error: str | None = None
    rejected: str | None = None  # the error code the simulator answered with, if any

    def describe(self) -> str:
        """One readable line."""
        detail = self.output if self.kind == "success" else self.error if self.kind == "failure" else ""
        status = f" -> rejected: {self.rejected}" if self.rejected else ""
        return f"callback {self.kind} {self.token} {detail or ''}".rstrip() + status


@dataclass(frozen=True)
class ExecutionEvent:
    """One history event of an execution, with tokens replaced by fingerprints.

    Example:
        >>> for ev in sim.follow(execution_arn, timeout=3):                  # doctest: +SKIP
        ...     print(format_event(ev))
    """

    execution_arn: str
    id: int
    type: str
    timestamp: datetime
    state_name: str | None
    details: dict[str, Any] = field(default_factory=dict)


def format_event(event: ExecutionEvent) -> str:
    """Render a history event as one readable line (state entered, task scheduled, outcome, ...).

    Example:
        >>> format_event(ExecutionEvent("arn", 2, "TaskStateEntered", datetime(2024, 1, 1), "Check"))
        '[2] TaskStateEntered Check'
    """
    d = event.details
    parts = [f"[{event.id}] {event.type}"]
    if event.state_name:
        parts.append(event.state_name)
    if event.type == "TaskScheduled":
        parts.append(f"{d.get('resourceType')}:{d.get('resource')}")
        params = d.get("parameters")
        if params is not None:
            parts.append(json.dumps(params, separators=(",", ":")))
        if d.get("heartbeatInSeconds"):
            parts.append(f"heartbeat={d['heartbeatInSeconds']}s")
    if event.type == "ExecutionStarted" and d.get("input") is not None:
        parts.append(f"input={d['input']}")
    for key in ("output", "error", "cause"):
        if d.get(key) is not None and event.type != "TaskScheduled":
            parts.append(f"{key}={d[key]}")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------------------
# History watcher
# ----------------------------------------------------------------------------------------------------------


class ExecutionWatcher:
    """Polls an execution's history and returns only the events not seen before.

    Step Functions has no "events since id" query, so each poll reads the whole (paginated) history and
    skips what it has already returned; executions in tests are short, so this is cheap.

    Example:
        >>> watcher = sim.watch(execution_arn)                               # doctest: +SKIP
        >>> for ev in watcher.poll():
        ...     print(format_event(ev))
    """

    def __init__(self, sfn: SFNClient, execution_arn: str) -> None:
        self._sfn = sfn
        self.execution_arn = execution_arn
        self._last_id = 0
        self._state: str | None = None
        self.status = "RUNNING"

    def poll(self) -> list[ExecutionEvent]:
        """Return the new events, oldest first, and refresh :attr:`status`."""
        new: list[ExecutionEvent] = []
        for page in self._sfn.get_paginator("get_execution_history").paginate(executionArn=self.execution_arn):
            for raw in page["events"]:
                if raw["id"] <= self._last_id:
                    continue
                self._last_id = raw["id"]
                new.append(self._convert(dict(raw)))
        self.status = self._sfn.describe_execution(executionArn=self.execution_arn)["status"]
        return new

    def _convert(self, raw: dict[str, Any]) -> ExecutionEvent:
        details: dict[str, Any] = {}
        for key, value in raw.items():
            if key.endswith("EventDetails") and isinstance(value, dict):
                details = dict(value)
        if raw["type"].endswith("StateEntered"):
            self._state = details.get("name")
        # Parameters and outputs are JSON strings; decode them so that token keys can be redacted.
        for key in ("parameters", "output", "input"):
            if isinstance(details.get(key), str):
                with contextlib.suppress(ValueError):
                    details[key] = json.loads(details[key])
        details = _redact(details)
        for key in ("output", "input"):
            if key in details and not isinstance(details[key], str):
                details[key] = json.dumps(details[key], separators=(",", ":"))
        state = details.get("name") or (self._state if not raw["type"].startswith("Execution") else None)
        return ExecutionEvent(self.execution_arn, raw["id"], raw["type"], raw["timestamp"], state, details)


# ----------------------------------------------------------------------------------------------------------
# The harness
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _SqsRoute:
    queue: Queue
    handler: LambdaHandler
    batch_size: int
    visibility_timeout: int | None
    as_eventbridge: bool
    retries: int
    retry_delay: float


@dataclass
class _Pending:
    """An event waiting to be (re)delivered to a handler (async invokes and their retries)."""

    source: str
    target: str
    handler: LambdaHandler
    event: Any
    attempt: int = 1
    not_before: float = 0.0
    retries: int = 0
    retry_delay: float = 0.0
    fail_task_on_error: bool = False


@dataclass
class _LambdaRoute:
    handler: LambdaHandler
    fail_task_on_error: bool


class LocalStepFunctions:
    """moto's Step Functions simulator in-process, with helpers and in-process Lambda delivery.

    On entry it sets fake credentials and the region (restoring the environment on exit), starts
    ``mock_aws`` with the state machine interpreter and the docker-less Lambda backend switched on, and
    quiets moto's loggers. Route queues and functions to handlers, then deliver either deterministically
    with :meth:`deliver_once` or in the background with :meth:`pump`.

    Args:
        region: the region for every client and resource.
        account_id: moto's default account; only used to build ARNs and the Lambda context.
        quiet: lower moto's loggers to CRITICAL while the simulator runs.
        context_factory: builds the Lambda context for a call from the function (or queue) name, e.g.
            ``lambda name: callback_kit.testing.FakeLambdaContext(function_name=name)``; by default a
            minimal context with 30 s remaining.

    Example:
        >>> def handler(event, context):                                     # doctest: +SKIP
        ...     for record in event["Records"]:
        ...         token = json.loads(record["body"])["TaskToken"]
        ...         boto3.client("stepfunctions").send_task_success(taskToken=token, output="{}")
        ...     return {"batchItemFailures": []}
        >>> with LocalStepFunctions() as sim:                                # doctest: +SKIP
        ...     sim.route_sqs(sim.create_queue("work"), handler)
        ...     ...
    """

    def __init__(
        self,
        region: str = "us-east-1",
        *,
        account_id: str = "123456789012",
        quiet: bool = True,
        context_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.region = region
        self._context_factory = context_factory
        self.account_id = account_id
        self._quiet = quiet
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_levels: dict[str, int] = {}
        self._patched: list[tuple[object, str]] = []
        self._clients: dict[str, Any] = {}
        self._sqs_routes: list[_SqsRoute] = []
        self._lambda_routes: dict[str, _LambdaRoute] = {}
        self._pending: list[_Pending] = []
        self._pending_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        self._pump_threads: list[threading.Thread] = []
        self._pump_stop = threading.Event()
        self._delivery_listeners: list[Callable[[Delivery], None]] = []
        self._callback_listeners: list[Callable[[CallbackCall], None]] = []
        self._role_arn: str | None = None
        self.dead_letters: list[Delivery] = []
        """Async deliveries (EventBridge, Lambda) whose handler raised on every attempt."""

    # -- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> LocalStepFunctions:
        try:
            from moto import mock_aws
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(_MOTO_MISSING) from exc
        fake = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        for key in _ENV_KEYS:
            self._saved_env[key] = os.environ.pop(key, None)
        os.environ.update(fake)
        if self._quiet:
            for name in ("moto", "moto.stepfunctions", "moto.stepfunctions.parser"):
                logger = logging.getLogger(name)
                self._saved_levels[name] = logger.level
                logger.setLevel(logging.CRITICAL)
        try:
            self._mock = mock_aws(
                config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
            )
            self._mock.start()
            self._install_hooks()
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_pump()
        for target, name in reversed(self._patched):
            with contextlib.suppress(AttributeError):
                delattr(target, name)
        self._patched.clear()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        self._restore()

    def _restore(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        for name, level in self._saved_levels.items():
            logging.getLogger(name).setLevel(level)
        self._saved_levels.clear()
        self._clients.clear()

    def _install_hooks(self) -> None:
        """Wrap moto's backends (this account and region only) to route Lambda invokes and see callbacks.

        Both are instance attributes set on moto's backend objects for the mock's lifetime and removed on
        exit. The Lambda one replaces ``LambdaSimpleBackend.invoke``, the documented extension point of the
        simple backend. The callback one wraps ``send_task_*`` of the Step Functions backend so that the
        demo can show heartbeats (which never appear in the execution history) from any client.
        """
        from moto.awslambda_simple.models import lambda_simple_backends
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        lam = lambda_simple_backends[self.account_id][self.region]
        original_invoke = lam.invoke

        def invoke(function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any) -> Any:
            route = self._lambda_route(function_name)
            if route is None:
                return original_invoke(function_name, qualifier, body, headers, response_headers)
            payload = json.loads(body) if body else {}
            # Queue it: running the handler here would beat and complete before moto arms the task's
            # heartbeat timer (see the module docstring).
            self._enqueue(
                _Pending(
                    source="lambda",
                    target=function_name.split(":function:")[-1].split(":")[0],
                    handler=route.handler,
                    event=payload,
                    fail_task_on_error=route.fail_task_on_error,
                )
            )
            return b"{}"

        self._set_attr(lam, "invoke", invoke)

        sfn_backend = stepfunctions_parser_backends[self.account_id][self.region]
        observed: tuple[tuple[str, Literal["success", "failure", "heartbeat"]], ...] = (
            ("send_task_success", "success"),
            ("send_task_failure", "failure"),
            ("send_task_heartbeat", "heartbeat"),
        )
        for method, kind in observed:
            self._set_attr(sfn_backend, method, self._observed(getattr(sfn_backend, method), kind))

    def _observed(self, original: Callable[..., Any], kind: Literal["success", "failure", "heartbeat"]) -> Any:
        def wrapper(task_token: str, *args: Any, **kwargs: Any) -> Any:
            extra: dict[str, str | None] = {}
            if kind == "success":
                extra["output"] = kwargs.get("outcome", args[0] if args else None)
            elif kind == "failure":
                extra["error"] = kwargs.get("error", args[0] if args else None)
            try:
                result = original(task_token, *args, **kwargs)
            except Exception as exc:
                self._emit_callback(
                    CallbackCall(kind, token_fingerprint(task_token), rejected=type(exc).__name__, **extra)
                )
                raise
            self._emit_callback(CallbackCall(kind, token_fingerprint(task_token), **extra))
            return result

        return wrapper

    def _set_attr(self, target: object, name: str, value: Any) -> None:
        setattr(target, name, value)
        self._patched.append((target, name))

    # -- clients -------------------------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        if self._mock is None:
            raise RuntimeError("use LocalStepFunctions as a context manager first")
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service, region_name=self.region)  # type: ignore[call-overload]
        return self._clients[service]

    @property
    def sfn(self) -> SFNClient:
        """A Step Functions client bound to the simulator."""
        client: SFNClient = self._client("stepfunctions")
        return client

    @property
    def sqs(self) -> SQSClient:
        """An SQS client bound to the simulator."""
        client: SQSClient = self._client("sqs")
        return client

    @property
    def events(self) -> EventBridgeClient:
        """An EventBridge client bound to the simulator."""
        client: EventBridgeClient = self._client("events")
        return client

    @property
    def lambda_(self) -> LambdaClient:
        """A Lambda client bound to the simulator (functions exist only as routing targets)."""
        client: LambdaClient = self._client("lambda")
        return client

    @property
    def iam(self) -> Any:
        """An IAM client bound to the simulator (typed ``Any``: the project does not depend on IAM stubs)."""
        return self._client("iam")

    # -- resources -----------------------------------------------------------------------------------------

    def role_arn(self) -> str:
        """Return the ARN of a role for state machines and functions, creating it once.

        Example:
            >>> sim.role_arn()                                               # doctest: +SKIP
            'arn:aws:iam::123456789012:role/callback-kit-local'
        """
        if self._role_arn is None:
            role = self.iam.create_role(RoleName="callback-kit-local", AssumeRolePolicyDocument="{}")
            self._role_arn = str(role["Role"]["Arn"])
        return self._role_arn

    def create_queue(self, name: str, *, fifo: bool = False, attributes: Mapping[str, str] | None = None) -> Queue:
        """Create a standard or FIFO queue (``.fifo`` is appended to the name when missing).

        FIFO queues get content-based deduplication, which EventBridge targets and state machines that send
        no deduplication id both need.

        Example:
            >>> q = sim.create_queue("orders", fifo=True)                    # doctest: +SKIP
        """
        attrs = dict(attributes or {})
        if fifo:
            name = name if name.endswith(".fifo") else name + ".fifo"
            attrs.setdefault("FifoQueue", "true")
            attrs.setdefault("ContentBasedDeduplication", "true")
        url = self.sqs.create_queue(QueueName=name, Attributes=cast("dict[QueueAttributeNameType, str]", attrs))[
            "QueueUrl"
        ]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Queue(name=name, url=url, arn=arn, fifo=fifo)

    def create_event_bus_to_queue(
        self,
        bus_name: str,
        queue: Queue,
        *,
        event_pattern: Mapping[str, Any] | None = None,
        rule_name: str | None = None,
    ) -> str:
        """Create a bus (unless ``"default"``) and a rule whose target is ``queue``; return the rule ARN.

        moto delivers the full EventBridge envelope as the SQS message body, which :meth:`route_eventbridge`
        hands to the handler as Lambda's async invoke would.

        Example:
            >>> sim.create_event_bus_to_queue("bus", q, event_pattern={"source": ["shop"]})  # doctest: +SKIP
        """
        if bus_name != "default":
            self.events.create_event_bus(Name=bus_name)
        rule = rule_name or f"{bus_name}-to-{queue.name.replace('.', '-')}"
        pattern = dict(event_pattern) if event_pattern else {"source": [{"prefix": ""}]}
        arn = self.events.put_rule(Name=rule, EventBusName=bus_name, EventPattern=json.dumps(pattern))["RuleArn"]
        self.events.put_targets(Rule=rule, EventBusName=bus_name, Targets=[{"Id": "queue", "Arn": queue.arn}])
        return arn

    def create_activity(self, name: str) -> str:
        """Create an activity and return its ARN (moto does not implement GetActivityTask).

        Example:
            >>> activity_arn = sim.create_activity("ageCheck")               # doctest: +SKIP
        """
        return self.sfn.create_activity(name=name)["activityArn"]

    def create_function(self, name: str) -> str:
        """Create a (code-less) Lambda function in moto and return its ARN.

        Example:
            >>> fn_arn = sim.create_function("notify")                       # doctest: +SKIP
        """
        fn = self.lambda_.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role_arn(),
            Handler="index.handler",
            Code={"ZipFile": b"not run: the harness routes invocations in-process"},
        )
        return fn["FunctionArn"]

    def create_state_machine(
        self,
        name: str,
        definition: Mapping[str, Any] | str | Path,
        *,
        substitutions: Mapping[str, Any] | None = None,
        role_arn: str | None = None,
        kind: Literal["STANDARD", "EXPRESS"] = "STANDARD",
    ) -> str:
        """Create a state machine from a dict, a JSON string or an ASL file; return its ARN.

        ``${Name}`` placeholders are replaced as CloudFormation's ``DefinitionSubstitutions`` does; a
        placeholder with no value raises ``KeyError`` (CloudFormation would reject the stack too).

        Example:
            >>> arn = sim.create_state_machine("flow", Path("statemachine/flow.asl.json"),   # doctest: +SKIP
            ...                                substitutions={"QueueUrl": q.url})
        """
        if isinstance(definition, Path):
            text = definition.read_text(encoding="utf-8")
        elif isinstance(definition, str):
            text = definition
        else:
            text = json.dumps(definition)
        text = substitute(text, substitutions or {})
        return self.sfn.create_state_machine(
            name=name, definition=text, roleArn=role_arn or self.role_arn(), type=kind
        )["stateMachineArn"]

    def start_execution(self, state_machine_arn: str, input: Any = None, *, name: str | None = None) -> str:
        """Start an execution with a unique name (moto rejects a second unnamed one); return its ARN.

        Example:
            >>> execution_arn = sim.start_execution(arn, {"orderId": "o-1"})  # doctest: +SKIP
        """
        name = name or f"run-{uuid.uuid4().hex[:16]}"
        payload = input if isinstance(input, str) else json.dumps({} if input is None else input)
        return self.sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=payload)["executionArn"]

    def wait_for_execution(self, execution_arn: str, timeout: float = 5.0, poll: float = 0.02) -> dict[str, Any]:
        """Wait until the execution ends; return ``describe_execution`` with ``output`` decoded (if JSON).

        Raises:
            TimeoutError: the execution still runs after ``timeout`` seconds.

        Example:
            >>> result = sim.wait_for_execution(execution_arn, timeout=3)    # doctest: +SKIP
            >>> result["status"], result["output"]
            ('SUCCEEDED', {'ok': True})
        """
        deadline = time.monotonic() + timeout
        while True:
            described: dict[str, Any] = dict(self.sfn.describe_execution(executionArn=execution_arn))
            if described["status"] in TERMINAL_STATUSES:
                if isinstance(described.get("output"), str):
                    with contextlib.suppress(ValueError):
                        described["output"] = json.loads(described["output"])
                return described
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{execution_arn} still {described['status']} after {timeout}s")
            time.sleep(poll)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Return the raw history events of an execution (may hold raw tokens: do not print).

        Example:
            >>> [e["type"] for e in sim.history(execution_arn)][-1]         # doctest: +SKIP
            'ExecutionSucceeded'
        """
        events: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(dict(e) for e in page["events"])
        return events

    def watch(self, execution_arn: str) -> ExecutionWatcher:
        """Return a watcher that yields the execution's new history events on each ``poll()``."""
        return ExecutionWatcher(self.sfn, execution_arn)

    def follow(self, execution_arn: str, timeout: float = 10.0, poll: float = 0.05) -> Iterator[ExecutionEvent]:
        """Yield history events as they happen until the execution ends (delivery is the pump's job).

        Raises:
            TimeoutError: the execution still runs after ``timeout`` seconds.

        Example:
            >>> with sim.pump():                                             # doctest: +SKIP
            ...     for ev in sim.follow(sim.start_execution(arn), timeout=5):
            ...         print(format_event(ev))
        """
        watcher = self.watch(execution_arn)
        deadline = time.monotonic() + timeout
        while True:
            yield from watcher.poll()
            if watcher.status in TERMINAL_STATUSES:
                yield from watcher.poll()  # events written between the history read and the status read
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{execution_arn} still {watcher.status} after {timeout}s")
            time.sleep(poll)

    # -- observers -----------------------------------------------------------------------------------------

    def on_delivery(self, listener: Callable[[Delivery], None]) -> None:
        """Call ``listener`` after every handler call (from the delivering thread)."""
        self._delivery_listeners.append(listener)

    def on_callback(self, listener: Callable[[CallbackCall], None]) -> None:
        """Call ``listener`` for every SendTaskSuccess/Failure/Heartbeat the simulator receives."""
        self._callback_listeners.append(listener)

    def _emit_callback(self, call: CallbackCall) -> None:
        for listener in list(self._callback_listeners):
            try:
                listener(call)
            except Exception:  # an observer must never break the simulator's request handling
                _log.exception("callback listener failed")

    def _emit_delivery(self, delivery: Delivery) -> None:
        for listener in list(self._delivery_listeners):
            try:
                listener(delivery)
            except Exception:
                _log.exception("delivery listener failed")

    # -- routing ---------------------------------------------------------------------------------------

    def route_sqs(
        self,
        queue: Queue,
        handler: LambdaHandler,
        *,
        batch_size: int = 10,
        visibility_timeout: int | None = None,
    ) -> None:
        """Deliver the queue's messages to ``handler`` as Lambda's SQS event source mapping does.

        Each delivery receives up to ``batch_size`` messages, builds the Lambda SQS event, calls the
        handler, and deletes every message not named in the returned ``batchItemFailures`` (all of them
        stay when the handler raises). The others become visible again after ``visibility_timeout``
        seconds (default: the queue's), like on AWS, and moto's redrive policy sends them to a DLQ.

        Example:
            >>> sim.route_sqs(q, handler, visibility_timeout=1)              # doctest: +SKIP
        """
        self._sqs_routes.append(_SqsRoute(queue, handler, batch_size, visibility_timeout, False, 0, 0.0))

    def route_eventbridge(
        self, queue: Queue, handler: LambdaHandler, *, retries: int = 2, retry_delay: float = 0.0
    ) -> None:
        """Deliver EventBridge envelopes that a rule put on ``queue`` to ``handler`` as an async invoke.

        The message is taken off the queue at once (EventBridge has handed it to Lambda). When the handler
        raises it is called again up to ``retries`` times, ``retry_delay`` seconds apart (AWS: twice, about
        1 and 2 minutes later), then the delivery is kept in :attr:`dead_letters`.

        Example:
            >>> sim.create_event_bus_to_queue("bus", q)                      # doctest: +SKIP
            >>> sim.route_eventbridge(q, handler, retries=0)
        """
        self._sqs_routes.append(_SqsRoute(queue, handler, 10, None, True, retries, retry_delay))

    def route_lambda(self, function_name: str, handler: LambdaHandler, *, fail_task_on_error: bool = True) -> str:
        """Create ``function_name`` in moto (if needed) and run ``handler`` when a state machine invokes it.

        The handler receives the task's ``Payload``. ``fail_task_on_error`` emulates a synchronous invoke
        on AWS, where a raised exception fails the task with its type name as the error.

        Returns:
            The function ARN, for the state machine's ``FunctionName``.

        Example:
            >>> fn_arn = sim.route_lambda("notify", handler)                 # doctest: +SKIP
        """
        try:
            arn = self.lambda_.get_function(FunctionName=function_name)["Configuration"]["FunctionArn"]
        except self.lambda_.exceptions.ResourceNotFoundException:
            arn = self.create_function(function_name)
        self._lambda_routes[function_name] = _LambdaRoute(handler, fail_task_on_error)
        return arn

    def _lambda_route(self, function_name: str) -> _LambdaRoute | None:
        # FunctionName may be a name, a full or partial ARN, with or without a qualifier.
        name = function_name.split(":function:")[-1].split(":")[0]
        return self._lambda_routes.get(name)

    def _enqueue(self, pending: _Pending) -> None:
        with self._pending_lock:
            self._pending.append(pending)

    # -- delivery ------------------------------------------------------------------------------------------

    def deliver_once(self, wait: float = 0.0) -> int:
        """Deliver everything that is ready now, once; return how many handler calls were made.

        Args:
            wait: seconds to keep looking when nothing is ready (0 = a single pass).

        Example:
            >>> execution_arn = sim.start_execution(arn)                     # doctest: +SKIP
            >>> sim.deliver_once(wait=1)
            1
        """
        deadline = time.monotonic() + wait
        while True:
            jobs = self._collect()
            for job in jobs:
                job()
            if jobs or time.monotonic() >= deadline:
                return len(jobs)
            time.sleep(0.02)

    def _collect(self) -> list[Callable[[], None]]:
        """Take what is ready off the queues and the pending list; return one job per handler call.

        Receiving is serialised (moto's SQS is not built for concurrent receivers in one process), while
        the returned jobs may run on several pump threads at once, as Lambda runs several invocations.
        """
        jobs: list[Callable[[], None]] = []
        with self._receive_lock:
            for route in list(self._sqs_routes):
                messages = self._receive(route)
                if not messages:
                    continue
                if not route.as_eventbridge:
                    jobs.append(functools.partial(self._process_batch, route, messages))
                    continue
                for message in messages:
                    # EventBridge has handed the event over: from here on Lambda's async retries apply.
                    self.sqs.delete_message(QueueUrl=route.queue.url, ReceiptHandle=message["ReceiptHandle"])
                    envelope = json.loads(message["Body"])
                    envelope.setdefault("account", self.account_id)  # moto omits it; AWS always sends it
                    self._enqueue(
                        _Pending(
                            source="eventbridge",
                            target=route.queue.name,
                            handler=route.handler,
                            event=envelope,
                            retries=route.retries,
                            retry_delay=route.retry_delay,
                        )
                    )
            now = time.monotonic()
            with self._pending_lock:
                ready = [p for p in self._pending if p.not_before <= now]
                self._pending = [p for p in self._pending if p.not_before > now]
        jobs.extend(functools.partial(self._process_pending, item) for item in ready)
        return jobs

    def _receive(self, route: _SqsRoute) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if route.visibility_timeout is not None:
            kwargs["VisibilityTimeout"] = route.visibility_timeout
        messages = self.sqs.receive_message(
            QueueUrl=route.queue.url,
            MaxNumberOfMessages=route.batch_size,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            **kwargs,
        ).get("Messages", [])
        return [dict(m) for m in messages]

    def _process_pending(self, item: _Pending) -> None:
        delivery = self._call(item.source, item.target, item.handler, item.event, item.attempt)
        if delivery.error is None:
            return
        if item.attempt <= item.retries:
            item.attempt += 1
            item.not_before = time.monotonic() + item.retry_delay
            self._enqueue(item)
        elif item.fail_task_on_error:
            self._fail_task_like_lambda(item.event, delivery.error)
        else:
            self.dead_letters.append(delivery)

    def _fail_task_like_lambda(self, payload: Any, error: BaseException) -> None:
        token = _find_token(payload)
        if token is None:
            _log.warning("handler raised and no token was found in its payload: the task keeps waiting")
            return
        cause = json.dumps(
            {
                "errorMessage": str(error),
                "errorType": type(error).__name__,
                "stackTrace": traceback.format_tb(error.__traceback__),
            }
        )
        with contextlib.suppress(Exception):  # the task may already be closed: nothing left to fail
            self.sfn.send_task_failure(taskToken=token, error=type(error).__name__, cause=cause)

    def _process_batch(self, route: _SqsRoute, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self.sqs_record(route.queue, m) for m in messages]}
        delivery = self._call("sqs", route.queue.name, route.handler, event, 1)
        if delivery.error is not None:
            return  # a raise fails the whole batch: every message stays for redelivery
        response = delivery.result if isinstance(delivery.result, Mapping) else {}
        failed = {
            item.get("itemIdentifier") for item in response.get("batchItemFailures") or [] if isinstance(item, Mapping)
        }
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in failed
        ]
        if done:
            self.sqs.delete_message_batch(QueueUrl=route.queue.url, Entries=done)  # type: ignore[arg-type]

    def sqs_record(self, queue: Queue, message: Mapping[str, Any]) -> dict[str, Any]:
        """Turn one ReceiveMessage message into the record Lambda's SQS event source mapping delivers.

        Example:
            >>> msg = sim.sqs.receive_message(QueueUrl=q.url)["Messages"][0]  # doctest: +SKIP
            >>> sim.sqs_record(q, msg)["eventSource"]
            'aws:sqs'
        """
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _lambda_message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": queue.arn,
            "awsRegion": self.region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    def _call(self, source: str, target: str, handler: LambdaHandler, event: Any, attempt: int) -> Delivery:
        name = target.replace(".", "-")
        if self._context_factory is not None:
            context = self._context_factory(name)
        else:
            context = _FakeLambdaContext(name, self.region, self.account_id)
        tokens = tuple(token_fingerprint(t) for t in _tokens_in(source, event))
        started = time.monotonic()
        result: Any = None
        error: BaseException | None = None
        try:
            result = handler(event, context)
        except Exception as exc:  # the handler is user code: any failure is a delivery outcome
            error = exc
        delivery = Delivery(source, target, event, result, error, attempt, tokens, time.monotonic() - started)
        self._emit_delivery(delivery)
        return delivery

    # -- background pump -------------------------------------------------------------------------------

    def start_pump(self, interval: float = 0.02, *, concurrency: int = 4) -> None:
        """Start ``concurrency`` daemon threads that deliver until :meth:`stop_pump`.

        Each thread loops over :meth:`deliver_once`, so up to ``concurrency`` handler calls run at once:
        one slow, heartbeating handler does not hold up the other executions' tasks.

        Example:
            >>> sim.start_pump(concurrency=2)                                # doctest: +SKIP
            >>> sim.stop_pump()
        """
        if self._pump_threads:
            return
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    if not self.deliver_once():
                        stop.wait(interval)
                except Exception:  # keep pumping: one bad round must not hang every later execution
                    _log.exception("simulator pump round failed")
                    stop.wait(interval)

        self._pump_stop = stop
        for i in range(max(1, concurrency)):
            thread = threading.Thread(target=loop, name=f"callback-kit-sim-pump-{i}", daemon=True)
            thread.start()
            self._pump_threads.append(thread)

    def stop_pump(self, timeout: float = 5.0) -> None:
        """Stop the pump threads (waits up to ``timeout`` for handler calls in progress)."""
        self._pump_stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._pump_threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._pump_threads.clear()
        self._pump_stop = threading.Event()

    @contextlib.contextmanager
    def pump(self, interval: float = 0.02, *, concurrency: int = 4) -> Iterator[LocalStepFunctions]:
        """Deliver in the background for the duration of a ``with`` block.

        Example:
            >>> with sim.pump():                                             # doctest: +SKIP
            ...     result = sim.wait_for_execution(sim.start_execution(arn), timeout=3)
        """
        self.start_pump(interval, concurrency=concurrency)
        try:
            yield self
        finally:
            self.stop_pump()

    def run(self, state_machine_arn: str, input: Any = None, *, timeout: float = 5.0) -> dict[str, Any]:
        """Start an execution, deliver its callbacks in the background and return its final description.

        Example:
            >>> sim.run(arn, {"n": 1}, timeout=3)["status"]                  # doctest: +SKIP
            'SUCCEEDED'
        """
        running = bool(self._pump_threads)
        if not running:
            self.start_pump()
        try:
            return self.wait_for_execution(self.start_execution(state_machine_arn, input), timeout)
        finally:
            if not running:
                self.stop_pump()


def substitute(text: str, substitutions: Mapping[str, Any]) -> str:
    """Apply CloudFormation ``DefinitionSubstitutions`` (``${Name}``) to an ASL text.

    Raises:
        KeyError: a placeholder has no value.

    Example:
        >>> substitute('{"QueueUrl": "${Q}"}', {"Q": "https://q"})
        '{"QueueUrl": "https://q"}'
    """

    def replace(match: re.Match[str]) -> str:
        value = substitutions[match.group(1)]
        return value if isinstance(value, str) else json.dumps(value)

    missing = sorted({m for m in _PLACEHOLDER.findall(text) if m not in substitutions})
    if missing:
        raise KeyError(f"no DefinitionSubstitutions value for: {', '.join(missing)}")
    return _PLACEHOLDER.sub(replace, text)


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS API message attribute -> the camelCase form Lambda puts in SQS records."""
    binary = value.get("BinaryValue")
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": base64.b64encode(binary).decode("ascii") if isinstance(binary, bytes) else binary,
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [base64.b64encode(b).decode("ascii") for b in value.get("BinaryListValues", [])],
        "dataType": value.get("DataType"),
    }


def _tokens_in(source: str, event: Any) -> Sequence[str]:
    """Tokens an event carries, for observers' fingerprints (best effort)."""
    if source == "sqs":
        found = []
        for record in event.get("Records", []):
            with contextlib.suppress(ValueError, TypeError):
                token = _find_token(json.loads(record["body"]))
                if token:
                    found.append(token)
        return found
    token = _find_token(event.get("detail") if source == "eventbridge" else event)
    return [token] if token else []
