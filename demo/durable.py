"""The demo's durable case: the SAM app's durable function on AWS's local durable runner, answered by the
order-check worker the state machine's cases use, through the same queue.

The function (a ``DurableConfig`` function of ``template.yaml``) runs on ``DurableFunctionTestRunner``; its
submitter puts ``{"callbackId", "order"}`` on the app's OrderQueue in moto, where the simulator delivers it to
the order-check worker, as it delivers CheckOrder's ``{"TaskToken", "order"}``. The worker answers through
:class:`~callback_kit.simulator.durable.RunnerLambdaClient` (the runner seen as Lambda), wrapped here so that
each call prints a line. Callback ids, like tokens, are printed as fingerprints only; the runner's own INFO log,
which quotes them raw, is kept quiet.

The runner and the SDK need Python 3.11 or later: :func:`unavailable` says why the case cannot run, and the demo
skips it with that reason.

Example:
    >>> with DurableRun(spec, reporter) as durable:                         # doctest: +SKIP
    ...     worker = handler.with_options(lambda_client=durable.lambda_client)
    ...     arn = durable.start({"order": {...}}, "demo-durable")
"""

from __future__ import annotations

import importlib.util
import json
import logging
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from callback_kit.logs import fingerprint
from callback_kit.task.classify import error_code
from demo.template import SamApp

__all__ = ["DurableRun", "DurableSpec", "durable_functions", "unavailable"]

#: AWS's local durable runner, the demo's stand-in for Lambda's durable execution service.
RUNNER_PACKAGE = "aws_durable_execution_sdk_python_testing"
#: Its logger, whose INFO lines quote callback ids raw.
_RUNNER_LOGGERS = (RUNNER_PACKAGE, "aws_durable_execution_sdk_python")
_ENDS = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionStopped"}


def unavailable() -> str | None:
    """Why the durable case cannot run here, in one line; ``None`` when it can.

    Example:
        >>> unavailable() is None or "Python" in unavailable()
        True
    """
    if sys.version_info < (3, 11):
        return f"AWS's local durable runner needs Python 3.11 or later (this is {platform.python_version()})"
    if importlib.util.find_spec(RUNNER_PACKAGE) is None:
        return "AWS's local durable runner is not installed (pip install -e '.[test]', which scripts/demo does)"
    return None


@dataclass(frozen=True)
class DurableSpec:
    """A durable function of the template: what the runner needs to run it as Lambda would.

    Attributes:
        logical_id: its logical id.
        name: its function name.
        handler: ``module.attribute`` under ``code_root``.
        code_root: its ``CodeUri`` directory.
        execution_timeout: its ``DurableConfig.ExecutionTimeout``, in seconds.
    """

    logical_id: str
    name: str
    handler: str
    code_root: Path
    execution_timeout: int


def durable_functions(app: SamApp) -> list[DurableSpec]:
    """The template's functions with a ``DurableConfig``, in template order."""
    code_uri = app.globals_of("Function").get("CodeUri")
    return [
        DurableSpec(
            logical_id,
            app.physical_name(logical_id, props, "FunctionName"),
            str(props["Handler"]),
            app.root / str(props.get("CodeUri", code_uri)),
            int(props["DurableConfig"]["ExecutionTimeout"]),
        )
        for logical_id, props in app.resources_of_type("AWS::Serverless::Function").items()
        if "DurableConfig" in props
    ]


#: ``(api, callback id fingerprint, detail, rejected code or None)`` for every durable callback call.
CallListener = Callable[[str, str, str, "str | None"], None]


class ReportingLambdaClient:
    """A durable callback client that tells a listener about every call (the id as a fingerprint only)."""

    def __init__(self, inner: Any, listener: CallListener) -> None:
        self.inner = inner
        self.listener = listener

    def send_durable_execution_callback_success(self, *, CallbackId: str, Result: bytes = b"") -> Any:
        """SendDurableExecutionCallbackSuccess, reported with its result."""
        detail = Result.decode("utf-8", "replace")
        send = self.inner.send_durable_execution_callback_success
        return self._call(
            "SendDurableExecutionCallbackSuccess",
            CallbackId,
            detail,
            lambda: send(CallbackId=CallbackId, Result=Result),
        )

    def send_durable_execution_callback_failure(self, *, CallbackId: str, Error: Mapping[str, Any]) -> Any:
        """SendDurableExecutionCallbackFailure, reported with its error type."""
        detail = f"error={Error.get('ErrorType')}"
        send = self.inner.send_durable_execution_callback_failure
        return self._call(
            "SendDurableExecutionCallbackFailure", CallbackId, detail, lambda: send(CallbackId=CallbackId, Error=Error)
        )

    def send_durable_execution_callback_heartbeat(self, *, CallbackId: str) -> Any:
        """SendDurableExecutionCallbackHeartbeat."""
        send = self.inner.send_durable_execution_callback_heartbeat
        return self._call("SendDurableExecutionCallbackHeartbeat", CallbackId, "", lambda: send(CallbackId=CallbackId))

    def _call(self, api: str, callback_id: str, detail: str, send: Callable[[], Any]) -> Any:
        try:
            response = send()
        except Exception as exc:
            self.listener(api, fingerprint(callback_id), detail, error_code(exc) or type(exc).__name__)
            raise
        self.listener(api, fingerprint(callback_id), detail, None)
        return response


class DurableRun:
    """One durable function on AWS's local durable runner, for the length of the demo.

    Args:
        spec: the function.
        listener: told about every callback call the worker makes through :attr:`lambda_client`.
    """

    def __init__(self, spec: DurableSpec, listener: CallListener) -> None:
        from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

        from callback_kit.simulator.durable import RunnerLambdaClient
        from demo.deploy import load_code

        self.spec = spec
        self._levels = {name: logging.getLogger(name).level for name in _RUNNER_LOGGERS}
        for name in _RUNNER_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        # Real time: the callback's heartbeat timeout must really run while the worker beats.
        self.runner = DurableFunctionTestRunner(handler=load_code(spec.code_root, spec.handler), skip_time=False)
        #: What the worker answers durable callbacks with (``lambda_client=``).
        self.lambda_client = ReportingLambdaClient(RunnerLambdaClient(self.runner), listener)

    def __enter__(self) -> DurableRun:
        return self

    def __exit__(self, *exc_info: type[BaseException] | BaseException | TracebackType | None) -> None:
        # The runner's close() has no annotations: called through a typed name, so that mypy passes with the
        # runner (3.11+) and without it (3.10) alike.
        close: Callable[[], None] = self.runner.close
        close()
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)

    def start(self, payload: Any, name: str) -> str:
        """Start an execution with ``payload`` as its input; its ARN."""
        arn: str = self.runner.run_async(
            input=json.dumps(payload),
            execution_timeout=self.spec.execution_timeout,
            function_name=self.spec.name,
            execution_name=name,
        )
        return arn

    def follow(self, arn: str, *, timeout: float, poll: float = 0.02) -> Iterator[Any]:
        """The execution's history events as they happen, until it ends.

        Raises:
            TimeoutError: it has not ended within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            events = list(self.runner.get_execution_history(arn, include_execution_data=True).events)
            for event in events[seen:]:
                yield event
                if event.event_type in _ENDS:
                    return
            seen = len(events)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"durable execution still running after {timeout}s")
            time.sleep(poll)


def describe(event: Any) -> tuple[str, str | None, str] | None:
    """``(kind, state, detail)`` of the progress line for a history event worth showing, else ``None``; a state of
    ``None`` means the wait the execution is in."""
    kind, name = event.event_type, event.name or ""
    if kind == "ExecutionStarted":
        payload = event.execution_started_details.input.payload
        return "execution", "", f"started on AWS's local durable runner, input {_short(payload)}"
    if kind == "ContextStarted" and event.sub_type == "WaitForCallback":
        return "state entered", name, "context.wait_for_callback"
    if kind == "CallbackStarted":
        callback_id = event.callback_started_details.callback_id
        return "token out", None, f"{fingerprint(callback_id)} -> the submitter sends it with the order to OrderQueue"
    if kind == "CallbackSucceeded":
        return "task done", None, f"result {_short(event.callback_succeeded_details.result.payload)}"
    if kind in ("CallbackFailed", "CallbackTimedOut"):
        return "task failed", None, kind
    if kind == "ExecutionSucceeded":
        return "SUCCEEDED", "", f"output {_short(event.execution_succeeded_details.result.payload, 160)}"
    if kind in _ENDS:
        return kind.removeprefix("Execution").upper().replace("TIMEDOUT", "TIMED_OUT"), "", kind
    return None


def _short(payload: Any, limit: int = 110) -> str:
    from demo.report import summarise

    return summarise(payload, limit)
