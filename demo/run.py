"""The demo's scenarios and command line: run the SAM app's state machine end to end on moto's simulator.

Each case starts one execution of the app's own ``statemachine/*.asl.json`` and follows it live; the workers
are the app's own ``handlers/`` (through the simulator's SQS, EventBridge and direct-invoke routing) and an
:class:`~callback_kit.activity.ActivityWorker` polling through :mod:`demo.activities`. Each worker
does ``--work-seconds`` of simulated work so that its heartbeats show. Orders over the approval threshold wait
for a person: the app's notifier hands the token off, and :class:`demo.approver.Approver` decides them with
``callback-kit send-success`` / ``send-failure``.

The last case runs the app's durable function (``DurableConfig``) on AWS's local durable runner
(:mod:`demo.durable`): it sends its callback id on the same queue, and the same order-check worker answers it. It
needs Python 3.11 or later, and is skipped, with the reason, where that runner cannot run.

Exit status: 0 when every case ended as expected, 1 when one did not, 2 when the demo could not start.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from callback_kit.simulator.moto_adapter import UnsupportedMotoError
from demo.template import SamApp, TemplateError, find_checkout

__all__ = ["Case", "CaseResult", "DemoContext", "build_cases", "main", "run"]

#: The function the activity worker runs (``module.attribute`` under the functions' ``CodeUri``).
ACTIVITY_HANDLER = "age_check.handler"
#: The execution input the app documents, under the checkout's root.
INPUT_FILE = "events/state_machine_input.json"
#: The chart's default place, in the checkout (ignored by git).
CHART = Path("demo-output") / "metrics.png"
_NEEDS_EXTRAS = "the demo needs the project's test extra (moto, PyYAML): run scripts/demo, or pip install -e '.[test]'"


@dataclass(frozen=True)
class Case:
    """One execution to run and what it must end with.

    Attributes:
        key: a short name (used in the execution's name).
        title: what the case shows.
        input: the execution input.
        status: the expected final status.
        output: for a success, the values the output must hold, by dotted path.
        error: for a failure, the error the execution must end with.
        approval: what the demo's approver decides when the order waits for approval (``approve``/``reject``).
        durable: run by the app's durable function on AWS's local durable runner, not by the state machine.
    """

    key: str
    title: str
    input: dict[str, Any]
    status: str
    output: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    approval: str | None = None
    durable: bool = False

    def problems(self, described: Mapping[str, Any]) -> list[str]:
        """What differs from the expected end (an empty list when the execution ended as expected)."""
        status = described.get("status")
        if status != self.status:
            return [f"status is {status}, expected {self.status}"]
        found = [
            f"output.{path} is {_at(described.get('output'), path)!r}, expected {value!r}"
            for path, value in self.output.items()
            if _at(described.get("output"), path) != value
        ]
        if self.error is not None and described.get("error") != self.error:
            found.append(f"error is {described.get('error')!r}, expected {self.error!r}")
        return found

    def expectation(self) -> str:
        """The expected end, in words."""
        if self.error is not None:
            return f"{self.status} with error {self.error}"
        shown = ", ".join(f"{path}={json.dumps(value)}" for path, value in self.output.items())
        return f"{self.status} with {shown}"


@dataclass(frozen=True)
class CaseResult:
    """How a case ended."""

    case: Case
    status: str
    summary: str
    problems: list[str]
    seconds: float
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        """Whether it ended as expected (a skipped case is not a failure)."""
        return not self.problems


@dataclass(frozen=True)
class DemoContext:
    """Handed to ``run``'s ``on_ready`` hook once everything is created, before the first execution.

    Attributes:
        sim: the simulator (register ``on_delivery``/``on_callback`` observers here).
        bridge: the activity bridge (``on_handed_out`` sees the activity tasks).
        state_machine_arn: the app's state machine in moto.
    """

    sim: Any
    bridge: Any
    state_machine_arn: str


def _at(value: Any, path: str) -> Any:
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def build_cases(root: Path) -> list[Case]:
    """The demo's cases, built on the app's documented execution input.

    Raises:
        TemplateError: the input file is missing or not the shape the cases need.
    """
    path = root / INPUT_FILE
    try:
        base = json.loads(path.read_text(encoding="utf-8"))
        base["order"]["items"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TemplateError(f"{path} should hold the state machine input (order and customer): {exc}") from exc
    pickup = copy.deepcopy(base)
    pickup["order"]["delivery"] = "pickup"
    rejected = copy.deepcopy(base)
    rejected["order"].update(
        orderId="ord-1002", items=[{"sku": "GOLD-BAR-1KG", "quantity": 1, "unitPrice": "72000.00"}]
    )
    approved = copy.deepcopy(base)
    approved["order"].update(orderId="ord-1003", items=[{"sku": "TV-OLED-65", "quantity": 1, "unitPrice": "1899.00"}])
    declined = copy.deepcopy(base)
    declined["order"].update(orderId="ord-1004", items=[{"sku": "EBIKE-CITY", "quantity": 1, "unitPrice": "2400.00"}])
    durable = copy.deepcopy(base["order"])
    durable["orderId"] = "ord-2001"
    delivered = {"ageCheck.verified": True, "notification.acknowledged": True}
    return [
        Case(
            "online",
            "success: shipped order with wine -> SQS order check, direct-invoke age check, EventBridge notify",
            base,
            "SUCCEEDED",
            output={"orderCheck.ageCheck": "online", **delivered},
        ),
        Case(
            "instore",
            "success: store pickup with wine -> SQS order check, activity worker age check, EventBridge notify",
            pickup,
            "SUCCEEDED",
            output={"orderCheck.ageCheck": "in_store", **delivered},
        ),
        Case(
            "rejected",
            "failure: a 72,000 EUR order -> the SQS worker fails the task, Catch routes it to OrderFailed",
            rejected,
            "FAILED",
            error="Order.Rejected",
        ),
        Case(
            "approved",
            "hand-off: a 1,899 EUR order waits for a person -> approved with callback-kit send-success",
            approved,
            "SUCCEEDED",
            output={"orderCheck.approval": "manual", "approval.approved": True, "notification.acknowledged": True},
            approval="approve",
        ),
        Case(
            "declined",
            "hand-off: a 2,400 EUR order waits for a person -> rejected with callback-kit send-failure",
            declined,
            "FAILED",
            error="Order.NotApproved",
            approval="reject",
        ),
        Case(
            "durable",
            "durable function: wait_for_callback sends its callback id on OrderQueue -> the same order-check worker",
            {"order": durable},
            "SUCCEEDED",
            output={"status": "approved", "orderCheck.ageCheck": "online"},
            durable=True,
        ),
    ]


def _slowed(fn: Callable[[Any], Any], seconds: float) -> Callable[[Any], Any]:
    """``fn`` after ``seconds`` of simulated work, so that the demo shows heartbeats going out meanwhile."""

    @functools.wraps(fn)
    def work(payload: Any) -> Any:
        time.sleep(seconds)
        return fn(payload)

    return work


def _as_worker(handler: Any, *, sim: Any, work: float, heartbeat: float, lambda_client: Any = None) -> Any:
    """The app's handler with the demo's work time and heartbeat interval, answering task tokens to the simulator
    and durable callbacks to ``lambda_client`` (AWS's local durable runner, when the durable case runs)."""
    from callback_kit.handler import CallbackHandler, callback_handler

    if not isinstance(handler, CallbackHandler):
        return handler  # a plain Lambda function: run as written
    options = {f.name: getattr(handler.options, f.name) for f in dataclasses.fields(handler.options)}
    options.update(heartbeat_interval=heartbeat, client=sim.sfn)
    if lambda_client is not None:
        options.update(lambda_client=lambda_client)
    return callback_handler(**options)(_slowed(handler.fn, work))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run the SAM app's state machine on moto's Step Functions simulator, with in-process workers.",
    )
    parser.add_argument("--root", type=Path, help="the callback-kit checkout (default: found automatically)")
    parser.add_argument("--work-seconds", type=float, default=0.5, help="simulated work per task (default 0.5)")
    parser.add_argument(
        "--heartbeat-interval", type=float, default=0.2, help="seconds between workers' heartbeats (default 0.2)"
    )
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds one execution may take (default 20)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colours (default auto)")
    parser.add_argument("--verbose", action="store_true", help="also show the library's own JSON log lines")
    parser.add_argument(
        "--chart",
        type=Path,
        help=f"where to write the PNG chart of the workers' metrics (default: {CHART.as_posix()} in the checkout)",
    )
    parser.add_argument("--no-chart", action="store_true", help="write no chart")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m demo``; returns the exit status."""
    return run(argv)


def run(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    on_ready: Callable[[DemoContext], None] | None = None,
) -> int:
    """Run the demo, writing to ``out`` (default stdout); return the exit status (0, 1 or 2).

    Example:
        >>> run(["--color", "never"])                                        # doctest: +SKIP
        0
    """
    args = _parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    from demo.report import Reporter, use_colour

    reporter = Reporter(stream, colour=use_colour(stream, args.color))
    started = time.monotonic()
    try:
        root = find_checkout(args.root)
        app = SamApp.load(root)
        cases = build_cases(root)
    except ImportError:
        reporter.write(f"demo: {_NEEDS_EXTRAS}")
        return 2
    except TemplateError as exc:
        reporter.write(f"demo: {exc}")
        return 2
    # The workers' own logs are JSON for CloudWatch; the demo's lines say the same in a readable form.
    saved = os.environ.get("POWERTOOLS_LOG_LEVEL")
    os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO" if args.verbose else "WARNING"
    from demo.metrics import captured, metrics_table

    try:
        with captured() as emf:  # the workers' EMF documents, which CloudWatch would read from their logs
            results = _run_cases(app, cases, args, reporter, on_ready)
    except UnsupportedMotoError as exc:
        reporter.write(f"demo: {exc}")
        return 2
    except ImportError as exc:
        reporter.write(f"demo: {_NEEDS_EXTRAS} ({exc})")
        return 2
    except TemplateError as exc:
        reporter.write(f"demo: {exc}")
        return 2
    finally:
        if saved is None:
            os.environ.pop("POWERTOOLS_LOG_LEVEL", None)
        else:
            os.environ["POWERTOOLS_LOG_LEVEL"] = saved
    reporter.write()
    reporter.write(reporter.paint("== metrics the workers wrote (EMF, one document per invocation)", "bold"))
    for line in metrics_table(emf.documents):
        reporter.write(f"  {line}")
    if not args.no_chart:
        reporter.write(f"  {_chart(emf.documents, args.chart or root / CHART)}")
    return _summary(reporter, results, time.monotonic() - started)


def _chart(documents: list[dict[str, Any]], path: Path) -> str:
    """Write the metrics chart; the line that says where, or why there is none."""
    from demo.chart import write_chart

    try:
        return f"chart: {write_chart(documents, path)}"
    except ImportError:
        return "chart: none (it needs matplotlib: pip install -e '.[demo]', which scripts/demo does)"
    except OSError as exc:
        return f"chart: none ({path} could not be written: {exc})"


def _run_cases(
    app: SamApp,
    cases: list[Case],
    args: argparse.Namespace,
    reporter: Any,
    on_ready: Callable[[DemoContext], None] | None,
) -> list[CaseResult]:
    from callback_kit.activity import ActivityWorker
    from callback_kit.simulator import LocalStepFunctions
    from demo.activities import ActivityTaskBridge
    from demo.approver import Approver
    from demo.deploy import deploy, load_code
    from demo.durable import DurableRun, durable_functions, unavailable

    with ExitStack() as stack:
        sim = stack.enter_context(LocalStepFunctions())
        bridge = stack.enter_context(ActivityTaskBridge(sim))
        specs = durable_functions(app)
        skip = unavailable() if specs else "the template has no durable function (DurableConfig)"
        durable = stack.enter_context(DurableRun(specs[0], reporter.durable_callback)) if skip is None else None
        as_worker = functools.partial(
            _as_worker,
            sim=sim,
            work=args.work_seconds,
            heartbeat=args.heartbeat_interval,
            lambda_client=durable.lambda_client if durable is not None else None,
        )
        deployed = deploy(sim, app, wrap=as_worker)
        stack.enter_context(_environment(deployed.environment))
        reporter.write(f"callback-kit demo: {app.root / 'template.yaml'} on moto's Step Functions simulator")
        reporter.write("created in moto (no AWS account, no Docker):")
        for line in deployed.created:
            reporter.write(f"  {line}")
        if durable is not None:
            reporter.write(
                f"durable function: {durable.spec.name} ({durable.spec.handler}, DurableConfig) runs on AWS's local "
                "durable runner; the order-check worker answers its callbacks through the runner's Lambda API"
            )
        subs = ", ".join(f"{k}={v}" for k, v in deployed.substitutions.items())
        reporter.write(f"DefinitionSubstitutions: {subs}")
        code_root = app.root / str(app.globals_of("Function").get("CodeUri", "handlers/"))
        activity_handler = load_code(code_root, ACTIVITY_HANDLER)
        workers = [
            ActivityWorker(
                arn,
                _slowed(activity_handler.fn, args.work_seconds),
                model=activity_handler.options.model,
                client=bridge.client(),
                heartbeat_interval=args.heartbeat_interval,
                metrics=activity_handler.options.metrics,
                worker_name=f"store-terminal-{i + 1}",
                shutdown_grace_seconds=2.0,
            )
            for i, arn in enumerate(deployed.activities.values())
        ]
        for logical_id, arn in deployed.activities.items():
            reporter.write(f"activity worker: {ACTIVITY_HANDLER} polls {arn.rsplit(':', 1)[-1]} ({logical_id})")
        reporter.write(
            f"each worker does {args.work_seconds:g}s of simulated work and heartbeats every "
            f"{args.heartbeat_interval:g}s; tokens and callback ids are shown only as fingerprints "
            "(tok-<sha256 prefix>)"
        )
        reporter.functions.update(deployed.functions)
        approver = Approver(sim, reporter, {c.input["order"]["orderId"]: c.approval for c in cases if c.approval})
        for topic in deployed.topics.values():
            inbox = approver.subscribe(topic)
            reporter.functions[inbox] = "approver"
            reporter.write(
                f"approver: reads {topic.rsplit(':', 1)[-1]} (via {inbox}) and decides with callback-kit send-*"
            )
        sim.on_callback(reporter.callback)
        sim.on_delivery(reporter.delivery)
        bridge.on_handed_out(lambda handed: reporter.handed_out(handed.fingerprint, handed.worker_name))
        if on_ready is not None:
            on_ready(DemoContext(sim, bridge, deployed.state_machine_arn))
        for worker in workers:
            worker.start()
        stack.callback(_stop_workers, workers, bridge)
        skipped = [CaseResult(c, "SKIPPED", "skipped", [], 0.0, skip) for c in cases if c.durable and durable is None]
        for result in skipped:
            reporter.write(f"case {result.case.key} skipped: {skip}")
        runnable = [c for c in cases if not (c.durable and durable is None)]
        with sim.pump():
            results = [
                _run_durable_case(durable, case, n, len(runnable), args.timeout, reporter)
                if case.durable and durable is not None
                else _run_case(sim, deployed.state_machine_arn, case, n, len(runnable), args.timeout, reporter)
                for n, case in enumerate(runnable, 1)
            ]
        return results + skipped
    raise AssertionError("unreachable")  # pragma: no cover - the with block returns or raises


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set the functions' environment (a topic's ARN, the API's URL) for the run; restore it after."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _stop_workers(workers: list[Any], bridge: Any) -> None:
    for worker in workers:
        worker.stop()
    bridge.close()
    for worker in workers:
        worker.wait(5.0)


def _run_case(sim: Any, arn: str, case: Case, n: int, total: int, timeout: float, reporter: Any) -> CaseResult:
    from callback_kit.simulator import ExecutionEvent

    reporter.write()
    reporter.write(reporter.paint(f"== case {n}/{total}: {case.title}", "bold"))
    reporter.header()
    reporter.begin()
    started = time.monotonic()
    execution = sim.start_execution(arn, case.input, name=f"demo-{case.key}-{os.urandom(3).hex()}")
    last: ExecutionEvent | None = None
    try:
        events: Iterator[ExecutionEvent] = sim.follow(execution, timeout=timeout, poll=0.02)
        for event in events:
            reporter.history(event)
            last = event
    except TimeoutError:
        cause = f"still running after {timeout}s"
        try:
            sim.sfn.stop_execution(executionArn=execution, error="Demo.Timeout", cause=cause)
        except Exception as exc:  # moto 5.2 crashes stopping an execution whose run has not begun yet
            reporter.write(f"   (could not stop it: {type(exc).__name__}: {exc})")
        problem = f"the execution did not end within {timeout:g}s"
        return CaseResult(case, "RUNNING", problem, [problem], time.monotonic() - started)
    described = dict(sim.wait_for_execution(execution, timeout=2.0))
    if last is not None and last.type == "ExecutionFailed":
        described.setdefault("error", last.details.get("error"))
        described.setdefault("cause", last.details.get("cause"))
    return _conclude(case, described, started, reporter)


def _run_durable_case(durable: Any, case: Case, n: int, total: int, timeout: float, reporter: Any) -> CaseResult:
    from demo.durable import describe

    reporter.write()
    reporter.write(reporter.paint(f"== case {n}/{total}: {case.title}", "bold"))
    reporter.header()
    reporter.begin()
    started = time.monotonic()
    arn = durable.start(case.input, f"demo-{case.key}-{os.urandom(3).hex()}")
    try:
        for event in durable.follow(arn, timeout=timeout):
            line = describe(event)
            if line is None:
                continue
            kind, state, detail = line
            if kind == "state entered":
                reporter.enter(state)
            reporter.line(
                kind, reporter.state if state is None else state, detail, at=event.event_timestamp.timestamp()
            )
    except TimeoutError:
        problem = f"the durable execution did not end within {timeout:g}s"
        return CaseResult(case, "RUNNING", problem, [problem], time.monotonic() - started)
    result = durable.runner.wait_for_result(arn, timeout=2)
    described: dict[str, Any] = {"status": result.status.name}
    if result.result is not None:
        described["output"] = json.loads(result.result)
    if result.error is not None:
        described["error"] = result.error.type
    return _conclude(case, described, started, reporter)


def _conclude(case: Case, described: Mapping[str, Any], started: float, reporter: Any) -> CaseResult:
    """Compare an ended execution with the case, and say how it went."""
    status = str(described["status"])
    problems = case.problems(described)
    seconds = time.monotonic() - started
    summary = f"{status} with error {described.get('error')}" if status != "SUCCEEDED" else status
    if not problems:
        reporter.write(f"-> {case.expectation()}: {reporter.paint('as expected', 'green')} ({seconds:.1f}s)")
    else:
        reporter.write(f"-> {summary}: {reporter.paint('NOT as expected', 'red')} ({seconds:.1f}s)")
        reporter.write(f"   expected {case.expectation()}")
        for problem in problems:
            reporter.write(f"   {problem}")
    return CaseResult(case, status, summary, problems, seconds)


def _summary(reporter: Any, results: list[CaseResult], seconds: float) -> int:
    reporter.write()
    reporter.write(reporter.paint("== summary", "bold"))
    for result in results:
        if result.skipped is not None:
            reporter.write(f"  {reporter.paint('skip', 'yellow')}  {result.case.key:<9} {result.skipped}")
            continue
        mark = reporter.paint("ok  ", "green") if result.ok else reporter.paint("FAIL", "red")
        reporter.write(f"  {mark}  {result.case.key:<9} {result.summary:<32} {result.seconds:5.1f}s")
    ran = [r for r in results if r.skipped is None]
    failed = [r for r in ran if not r.ok]
    if failed:
        names = ", ".join(r.case.key for r in failed)
        reporter.write(f"demo FAILED: {len(failed)} of {len(ran)} cases did not end as expected ({names})")
        return 1
    reporter.write(f"demo passed: all {len(ran)} executions ended as expected in {seconds:.1f}s")
    return 0
