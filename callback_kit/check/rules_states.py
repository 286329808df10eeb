"""The rules about callback tasks themselves: CK001-CK005, CK008, CK010, CK011, CK013 and CK014.

Each rule is a function of one state (with what encloses it) that yields ``(code, level, message, fix)``;
:mod:`callback_kit.check.engine` turns those into findings with the file and state they belong to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from callback_kit.check.asl import StateRef, callback_kind, caught_errors, integer
from callback_kit.check.findings import Level
from callback_kit.check.links import arguments
from callback_kit.check.tokens import key_path, token_refs, worker_finds_token

#: Step Functions' default TimeoutSeconds for a task that sets none: 99,999,999 s, more than three years' worth
#: of waiting were it not for the one-year cap on a Standard execution.
DEFAULT_TASK_TIMEOUT = 99_999_999
#: SendTaskSuccess/Failure/Heartbeat refill at 500 per second at best (us-east-1, us-west-2, eu-west-1).
SEND_TASK_REFILL = 500
#: A distributed Map runs this many child executions at once when MaxConcurrency is not set.
DISTRIBUTED_MAP_DEFAULT_CONCURRENCY = 1000
#: Where each integration puts the message its worker parses: the SQS body, the Lambda payload, the SNS message.
MESSAGE_ROOTS = {":sqs:sendMessage": "MessageBody", ":lambda:invoke": "Payload", ":sns:publish": "Message"}

Raw = tuple[str, Level, str, str]


@dataclass(frozen=True)
class Worker:
    """What the template tells about the worker of a task: its heartbeat interval and where that came from.

    ``hands_off``: the worker calls ``ck.hand_off()``, so a person or another system completes the task and nobody
    sends heartbeats for it while they decide.

    ``durable``: the worker is a Lambda durable function, which sends no heartbeats while it is suspended (in a
    wait, waiting for a callback, between retries); ``longest_wait`` is the longest it may be suspended for as the
    template shows it, its ``DurableConfig.ExecutionTimeout`` (``None``: not known).
    """

    interval: float
    source: str
    hands_off: bool = False
    durable: bool = False
    longest_wait: float | None = None


def callback_rules(ref: StateRef, machine: Mapping[str, Any], worker: Worker | None) -> Iterator[Raw]:
    """Every finding about one state (none unless it is a callback task)."""
    kind = callback_kind(ref.state)
    if kind is None:
        return
    yield from _timeouts(ref, machine, worker)
    if kind == "token":
        yield from _token_passed(ref)
    yield from _catch(ref)
    if is_container_task(ref.state):
        yield from _ecs_errors(ref)
    yield from _map_concurrency(ref)
    if ref.express:
        yield (
            "CK011",
            "error",
            "a callback task in an Express workflow: Express workflows support neither .waitForTaskToken nor "
            "activities, so the state machine cannot be created or the task never runs",
            "make the state machine STANDARD (for a distributed Map: ProcessorConfig.ExecutionType STANDARD)",
        )


def _timeouts(ref: StateRef, machine: Mapping[str, Any], worker: Worker | None) -> Iterator[Raw]:
    state = ref.state
    has_timeout = "TimeoutSeconds" in state or "TimeoutSecondsPath" in state
    has_heartbeat = "HeartbeatSeconds" in state or "HeartbeatSecondsPath" in state
    timeout, heartbeat = integer(state.get("TimeoutSeconds")), integer(state.get("HeartbeatSeconds"))
    if not has_timeout:
        overall = integer(machine.get("TimeoutSeconds"))
        tail = (
            f"; only the state machine's TimeoutSeconds ({overall}) ends it, failing the whole execution"
            if overall
            else ", and such executions raise no alarm"
        )
        yield (
            "CK001",
            "error",
            f"callback task without TimeoutSeconds: it waits up to a year for a callback that may never come{tail}",
            "set TimeoutSeconds to the longest the answer may take, e.g. 3600",
        )
    unbeaten = worker is not None and (worker.hands_off or worker.durable)
    if not has_heartbeat and not unbeaten:
        after = f"{timeout} s" if timeout else "a year"
        beat = f"{round(3 * worker.interval)}" if worker else "90"
        yield (
            "CK002",
            "warning",
            f"callback task without HeartbeatSeconds: a worker that dies is noticed only at TimeoutSeconds ({after})",
            f"set HeartbeatSeconds to about 3x the worker's heartbeat interval, e.g. {beat}; for a hand-off to a "
            "person, who cannot heartbeat, put 'callback-kit: ignore CK002' in the state's Comment",
        )
    if heartbeat is not None and timeout is not None and heartbeat >= timeout:
        yield (
            "CK004",
            "error",
            f"HeartbeatSeconds ({heartbeat}) is not below TimeoutSeconds ({timeout}): Step Functions requires it to be "
            "smaller, and such a heartbeat could never catch a dead worker first",
            "lower HeartbeatSeconds well below TimeoutSeconds",
        )
    elif has_heartbeat and worker is not None and worker.durable:
        yield from _durable_heartbeat(heartbeat, worker)
    elif heartbeat is not None and worker is not None and worker.hands_off:
        yield (
            "CK004",
            "error",
            f"HeartbeatSeconds {heartbeat} but the worker hands the token off ({worker.source}): nobody sends "
            f"heartbeats while the task is out, so it times out {heartbeat} s after it starts",
            "drop HeartbeatSeconds and let TimeoutSeconds bound the hand-off",
        )
    elif heartbeat is not None and worker is not None:
        if worker.interval <= 0:
            yield (
                "CK004",
                "error",
                f"HeartbeatSeconds {heartbeat} but the worker sends no heartbeats ({worker.source}): every task that "
                f"runs longer than {heartbeat} s times out",
                "turn the worker's heartbeats on (CALLBACK_KIT_HEARTBEAT_INTERVAL > 0) or drop HeartbeatSeconds",
            )
        elif heartbeat < 2 * worker.interval:
            yield (
                "CK004",
                "error",
                f"HeartbeatSeconds {heartbeat} is less than twice the worker's heartbeat interval of "
                f"{worker.interval:g} s ({worker.source}): one late or lost heartbeat times the task out",
                f"set HeartbeatSeconds to about {round(3 * worker.interval)} (3x the interval), or the interval to at "
                f"most {heartbeat / 3:.3g} s",
            )


def _durable_heartbeat(heartbeat: int | None, worker: Worker) -> Iterator[Raw]:
    """CK014: nobody beats for a durable function while it is suspended, so its wait must fit in HeartbeatSeconds.

    The template shows no wait, only the bound of them all: the ExecutionTimeout. A HeartbeatSeconds at least that
    long cannot expire first; any shorter one (or one set at run time, or beside an unknown bound) can.
    """
    longest = worker.longest_wait
    if heartbeat is not None and longest is not None and heartbeat >= longest:
        return
    declared = f"HeartbeatSeconds {heartbeat}" if heartbeat is not None else "a HeartbeatSeconds set at run time"
    bound = (
        f"its DurableConfig ExecutionTimeout lets it wait up to {longest:g} s"
        if longest is not None
        else "its DurableConfig sets no ExecutionTimeout the checker can read, so any wait may be the longer"
    )
    yield (
        "CK014",
        "error",
        f"{declared} on a task answered by a durable function ({worker.source}): it sends no heartbeats while it "
        f"is suspended in a wait or a callback, and {bound}; a longer wait times the task out "
        "(States.HeartbeatTimeout) while the function is still working on it",
        "drop HeartbeatSeconds and let TimeoutSeconds (at least the ExecutionTimeout) bound the task, or raise "
        "HeartbeatSeconds to the ExecutionTimeout; if every wait is known to be shorter, put 'callback-kit: ignore "
        "CK014' in the state's Comment",
    )


def _token_passed(ref: StateRef) -> Iterator[Raw]:
    jsonata = ref.query_language == "JSONata"
    refs = token_refs(arguments(ref.state))
    if not refs:
        example = '"TaskToken": "{% $states.context.Task.Token %}"' if jsonata else '"TaskToken.$": "$$.Task.Token"'
        field = "Arguments" if jsonata else "Parameters"
        yield (
            "CK003",
            "error",
            f"the task waits for its token, but its {field} never pass it "
            f"({'$states.context.Task.Token' if jsonata else '$$.Task.Token'}): nobody can ever answer it",
            f"pass it to the worker, e.g. {example} in the message",
        )
        return
    yield from _token_key(ref, refs, jsonata)


def _token_key(ref: StateRef, refs: list[Any], jsonata: bool) -> Iterator[Raw]:
    """CK008: the token must sit where a callback-kit worker looks for it, in the message the worker parses."""
    resource = str(ref.state.get("Resource", ""))
    roots: list[tuple[str | int, ...]] = []
    for marker, root in MESSAGE_ROOTS.items():
        if marker in resource:
            roots = [(root,)]
    if ":events:putEvents" in resource:
        entries = (arguments(ref.state) or {}).get("Entries")
        roots = [("Entries", i, "Detail") for i in range(len(entries))] if isinstance(entries, list) else []
    if not roots:
        return  # ECS, DynamoDB, any other hand-off: the token is not read by a callback-kit worker
    if any(r.suffix is None for r in refs):
        return  # built by an intrinsic or expression: its key cannot be known without running it
    paths = [p for r in refs for root in roots if (p := key_path(r, root)) is not None]
    if any(worker_finds_token(p) for p in paths):
        return
    message = roots[0][-1]
    example = '"TaskToken": "{% $states.context.Task.Token %}"' if jsonata else '"TaskToken.$": "$$.Task.Token"'
    if not paths:
        where = ".".join(str(p) for p in refs[0].path)
        yield (
            "CK008",
            "warning",
            f"the token is passed in {where}, outside the {message} a callback-kit worker reads it from",
            f"put it in the {message}: {example}",
        )
    elif "" in paths:
        yield (
            "CK008",
            "warning",
            f"the {message} is the bare token, not an object holding it: a callback-kit worker finds no token in it",
            f"send an object: {{{example}, ...}}",
        )
    else:
        yield (
            "CK008",
            "warning",
            f"the token is passed as {paths[0]!r} in the {message}: a callback-kit worker looks for TaskToken, "
            "taskToken, token (any case, with or without underscores), MyTaskToken or context.Task.Token",
            f"rename the key to TaskToken, or give the worker token_path={paths[0]!r}",
        )


def _catch(ref: StateRef) -> Iterator[Raw]:
    caught = caught_errors(ref)
    timeout = bool(caught & {"States.ALL", "States.Timeout"})
    failures = bool(caught & {"States.ALL", "States.TaskFailed"}) or any(not e.startswith("States.") for e in caught)
    missing = [name for name, ok in (("States.Timeout", timeout), ("task failures", failures)) if not ok]
    if missing:
        yield (
            "CK005",
            "warning",
            f"no Catch covers {' or '.join(missing)}: a timed-out or failed callback fails the whole execution "
            "instead of reaching a state that cleans up or reports it",
            'add "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "<handler>"}]',
        )


def is_container_task(state: Mapping[str, Any]) -> bool:
    """Whether a state is an ``ecs:runTask.waitForTaskToken`` task: its token is in a container's environment.

    Example:
        >>> is_container_task({"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.waitForTaskToken"})
        True
        >>> is_container_task({"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask.sync"})
        False
    """
    return callback_kind(state) == "token" and ":ecs:runTask." in str(state.get("Resource", ""))


def _ecs_errors(ref: StateRef) -> Iterator[Raw]:
    """CK013: ``Ecs.*`` errors are raised for ``ecs:runTask.sync`` only; on a token task they never match."""
    for field in ("Retry", "Catch"):
        for rule in ref.state.get(field) or ():
            names = rule.get("ErrorEquals") if isinstance(rule, Mapping) else None
            ecs = sorted({str(n) for n in names or () if str(n).startswith("Ecs.")})
            if ecs:
                yield (
                    "CK013",
                    "error",
                    f"a {field} on {', '.join(ecs)}: Step Functions raises Ecs.* errors only for ecs:runTask.sync, "
                    "never for .waitForTaskToken, so it never fires, and a container that never starts leaves the "
                    "task waiting until TimeoutSeconds",
                    "match CallbackKit.ContainerStopped (sent by callback_kit.reaper for a container that stopped "
                    "unanswered) and States.Timeout instead, or use ecs:runTask.sync if the container need not answer",
                )


def _map_concurrency(ref: StateRef) -> Iterator[Raw]:
    product, distributed = 1, False
    for state in ref.maps:
        config = (state.get("ItemProcessor") or {}).get("ProcessorConfig") or {}
        is_distributed = isinstance(config, Mapping) and config.get("Mode") == "DISTRIBUTED"
        distributed = distributed or is_distributed
        if "MaxConcurrencyPath" in state or isinstance(state.get("MaxConcurrency"), str):
            return  # set at run time: its value is not known here
        limit = integer(state.get("MaxConcurrency")) or 0
        if limit == 0 and not is_distributed:
            yield (
                "CK010",
                "warning",
                "callback task in a Map without MaxConcurrency: every item's task is open at once, and the workers, "
                "their queue and the SendTask* quota (500/s at best) take the whole batch together",
                "set MaxConcurrency on the Map to what the workers can answer at once",
            )
            return
        product *= limit or DISTRIBUTED_MAP_DEFAULT_CONCURRENCY
    if distributed and product > SEND_TASK_REFILL:
        yield (
            "CK010",
            "warning",
            f"callback task in a distributed Map with up to {product} tasks open at once: their heartbeats and "
            f"completions share the SendTask* quota, which refills at {SEND_TASK_REFILL}/s at best",
            f"set MaxConcurrency (default {DISTRIBUTED_MAP_DEFAULT_CONCURRENCY}) so that tasks open at once / the "
            f"heartbeat interval stays well under {SEND_TASK_REFILL}",
        )
