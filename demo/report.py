"""Live, readable progress lines for the demo: one line per thing that happens, in simple columns.

Lines come from three threads at once (the history follower, the workers' callbacks and the activity
worker's polls), so every write holds one lock. Colours are used only when asked for or when the output is a
terminal (and ``NO_COLOR`` is unset). Tokens only ever appear as fingerprints: the history events are already
redacted by the simulator, callbacks carry fingerprints, and the activity hand-out is printed by fingerprint.
Durable callback ids are shown the same way (:mod:`demo.durable` prints its runner's events by fingerprint).

Example:
    >>> import io
    >>> r = Reporter(io.StringIO(), colour=False)
    >>> r.line("state entered", "CheckOrder", "")
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

from callback_kit.simulator import CallbackCall, Delivery, ExecutionEvent

__all__ = ["Reporter", "summarise", "use_colour"]

_COLOURS = {"green": "32", "red": "31", "yellow": "33", "cyan": "36", "magenta": "35", "dim": "2", "bold": "1"}
_KIND_COLOUR = {
    "execution": "bold",
    "state entered": "cyan",
    "token out": "magenta",
    "scheduled": "dim",
    "worker": "dim",
    "heartbeat": "yellow",
    "callback": "magenta",
    "task done": "green",
    "task failed": "red",
    "SUCCEEDED": "green",
    "FAILED": "red",
}
#: Widths of the time, kind and state columns.
_WIDTHS = (7, 14, 18)
_MAX_DETAIL = 110


def use_colour(out: TextIO, choice: str = "auto") -> bool:
    """Whether to colour ``out``: ``always``, ``never``, or ``auto`` (a TTY and no ``NO_COLOR``)."""
    if choice in ("always", "never"):
        return choice == "always"
    return bool(getattr(out, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def summarise(value: Any, limit: int = _MAX_DETAIL) -> str:
    """Compact JSON of ``value`` (a JSON string is decoded first), cut to ``limit`` characters.

    Example:
        >>> summarise('{"a": 1}')
        '{"a":1}'
    """
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fingerprint_in(value: Any) -> str | None:
    """The first token fingerprint under a key that names a token (the simulator redacts history this way)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if "token" in str(key).lower() and isinstance(item, str) and item.startswith("tok-"):
                return item
            found = _fingerprint_in(item)
            if found:
                return found
    if isinstance(value, list):
        for item in value:
            found = _fingerprint_in(item)
            if found:
                return found
    return None


def _error(details: Mapping[str, Any]) -> str:
    """``error=... cause=...``, without the cause when there is none (moto drops SendTaskFailure's cause)."""
    cause = details.get("cause")
    return f"error={details.get('error')}" + (f" cause={summarise(cause)}" if cause else "")


def _target(resource: str, params: Mapping[str, Any]) -> str:
    """Where a task sent its token: the queue, the function or the bus."""
    if "QueueUrl" in params:
        return "queue " + str(params["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
    if "FunctionName" in params:
        return "function " + str(params["FunctionName"]).rsplit(":", 1)[-1]
    entries = params.get("Entries")
    if isinstance(entries, list) and entries and isinstance(entries[0], Mapping):
        return "bus " + str(entries[0].get("EventBusName", "default"))
    return resource


class Reporter:
    """Writes the demo's progress lines: ``time  what  state  detail``.

    Args:
        out: where to write.
        colour: whether to use ANSI colours.
    """

    def __init__(self, out: TextIO, *, colour: bool) -> None:
        self.out = out
        self.colour = colour
        self._lock = threading.Lock()
        self._t0 = time.time()
        self._state = ""
        self._handed_out: dict[str, str] = {}
        self.functions: dict[str, str] = {}
        """Function name by delivery target (queue or function name), for the worker lines."""

    def paint(self, text: str, colour: str | None) -> str:
        """``text`` in ``colour`` (a name of ``_COLOURS``) if colours are on."""
        if not self.colour or colour is None:
            return text
        return f"\033[{_COLOURS[colour]}m{text}\033[0m"

    def write(self, text: str = "") -> None:
        """Write one free-form line."""
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def begin(self) -> None:
        """Start a new execution's clock."""
        self._t0 = time.time()
        self._state = ""
        self._handed_out.clear()

    def header(self) -> None:
        """The column titles."""
        t, k, s = _WIDTHS
        self.write(self.paint(f"{'time':>{t}}  {'what':<{k}}  {'state':<{s}}  detail", "dim"))

    def line(self, kind: str, state: str, detail: str, *, at: float | None = None) -> None:
        """One progress line; ``at`` is a wall-clock time (default: now)."""
        t, k, s = _WIDTHS
        elapsed = (at if at is not None else time.time()) - self._t0
        colour = _KIND_COLOUR.get(kind)
        text = f"{elapsed:>{t - 1}.2f}s  {self.paint(f'{kind:<{k}}', colour)}  {state:<{s}}  {detail}"
        self.write(text.rstrip())

    # -- sources of lines ------------------------------------------------------------------------------
    def history(self, event: ExecutionEvent) -> None:
        """A line for a history event worth showing (state entered, token handed out, task outcome, end)."""
        d, kind, at = event.details, event.type, event.timestamp.timestamp()
        state = event.state_name or ""
        if kind.endswith("StateEntered"):
            self._state = state
            self.line("state entered", state, "", at=at)
        elif kind == "ExecutionStarted":
            self.line("execution", "", f"started, input {summarise(d.get('input'))}", at=at)
        elif kind == "TaskScheduled":
            raw = d.get("parameters")
            params: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            where = _target(str(d.get("resource")), params)
            fp = _fingerprint_in(params) or "(no token)"
            self.line("token out", state, f"{fp} -> {d.get('resourceType')}:{d.get('resource')} {where}", at=at)
        elif kind == "ActivityScheduled":
            activity = str(d.get("resource", "")).rsplit(":", 1)[-1]
            self.line("scheduled", state, f"activity {activity}: waiting for a worker's GetActivityTask", at=at)
        elif kind == "ActivityStarted":
            worker = str(d.get("workerName", ""))
            with self._lock:
                fp = self._handed_out.pop(worker, "a token")
            self.line("token out", state, f"{fp} -> GetActivityTask of activity worker {worker or '?'}", at=at)
        elif kind in ("TaskSucceeded", "ActivitySucceeded"):
            self.line("task done", state, f"output {summarise(d.get('output'))}", at=at)
        elif kind in ("TaskFailed", "ActivityFailed", "TaskTimedOut", "ActivityTimedOut"):
            self.line("task failed", state, f"{kind}: {_error(d)}", at=at)
        elif kind == "ExecutionSucceeded":
            self.line("SUCCEEDED", "", f"output {summarise(d.get('output'), 160)}", at=at)
        elif kind in ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"):
            status = kind.removeprefix("Execution").upper().replace("TIMEDOUT", "TIMED_OUT")
            self.line(status, "", _error(d), at=at)

    def callback(self, call: CallbackCall) -> None:
        """A line for a SendTask* call the simulator received."""
        rejected = f"  (rejected: {call.rejected})" if call.rejected else ""
        if call.kind == "heartbeat":
            self.line("heartbeat", self._state, f"SendTaskHeartbeat {call.token}{rejected}")
        elif call.kind == "success":
            self.line("callback", self._state, f"SendTaskSuccess {call.token} {summarise(call.output)}{rejected}")
        else:
            self.line("callback", self._state, f"SendTaskFailure {call.token} error={call.error}{rejected}")

    def delivery(self, delivery: Delivery) -> None:
        """A line for a worker invocation that finished (the simulator calls this after the handler returns)."""
        via = {"sqs": "SQS batch", "eventbridge": "EventBridge event", "lambda": "direct invoke"}[delivery.source]
        outcome = f"raised {type(delivery.error).__name__}" if delivery.error else "returned"
        if isinstance(delivery.result, Mapping) and "batchItemFailures" in delivery.result:
            outcome += f" (batchItemFailures: {len(delivery.result['batchItemFailures'] or [])})"
        tokens = ", ".join(delivery.tokens) or "no token"
        function = self.functions.get(delivery.target, delivery.target)
        detail = f"{function} ({via}, {tokens}) {outcome} after {delivery.seconds:.2f}s"
        self.line("worker", self._state, detail)

    def enter(self, state: str) -> None:
        """Say which state the next callback and worker lines belong to (a durable function's wait)."""
        with self._lock:
            self._state = state

    @property
    def state(self) -> str:
        """The state the callback and worker lines belong to now."""
        return self._state

    def durable_callback(self, api: str, fingerprint: str, detail: str, rejected: str | None) -> None:
        """A line for a SendDurableExecutionCallback* call the worker made (the callback id as its fingerprint)."""
        kind = "heartbeat" if api.endswith("Heartbeat") else "callback"
        shown = f" {summarise(detail)}" if detail else ""
        refused = f"  (rejected: {rejected})" if rejected else ""
        self.line(kind, self._state, f"{api} {fingerprint}{shown}{refused}")

    def handed_out(self, fingerprint: str, worker_name: str) -> None:
        """Note an activity task handed to a worker; its line is written with the ``ActivityStarted`` event.

        GetActivityTask answers before the history follower sees ``ActivityScheduled``: waiting for
        ``ActivityStarted`` keeps the lines in the order things happened.
        """
        with self._lock:
            self._handed_out[worker_name] = fingerprint
