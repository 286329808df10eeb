"""Resources in the simulator (role, queues, bus and rule, functions, state machines) and executions.

:class:`CloudResources` adds to the engine what a SAM stack would create and what a test does with a state
machine: start it, wait for it, read or follow its history. :func:`substitute` applies ``DefinitionSubstitutions``.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from callback_kit.simulator.definitions import check_definition
from callback_kit.simulator.engine import SimulatorEngine
from callback_kit.simulator.records import TERMINAL_STATUSES, Queue
from callback_kit.simulator.watch import ExecutionEvent, ExecutionWatcher

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

__all__ = ["CloudResources", "substitute"]

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


class CloudResources(SimulatorEngine):
    """The engine plus resources and executions; a base of :class:`~callback_kit.simulator.LocalStepFunctions`."""

    _role_arn: str | None = None

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

        Raises:
            UnsupportedDefinitionError: the definition uses JSONata or ``ecs:runTask``, which the simulator
                cannot run as AWS does (see :mod:`callback_kit.simulator.definitions`).

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
        check_definition(text)
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
            >>> result["status"], result["output"]  # doctest: +SKIP
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
