"""Run one command for one task token: the child process, its heartbeats, its one callback."""

from __future__ import annotations

import enum
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import IO, Any

from callback_kit.container.streams import StderrRelay, read_capped
from callback_kit.exceptions import (
    ERROR_COMMAND_FAILED,
    ERROR_INVALID_COMMAND_OUTPUT,
    ERROR_OUTPUT_TOO_LARGE,
    ERROR_WORKER_SHUTDOWN,
    CallbackDeliveryError,
)
from callback_kit.logs import fingerprint, get_logger, mask_token
from callback_kit.observe import recorder_for
from callback_kit.outcome import MAX_OUTPUT_BYTES, Failure, Outcome, encode_output, failure
from callback_kit.task.completion import Completer, Delivery, RetryPolicy
from callback_kit.task.heartbeat import HeartbeatScheduler, get_scheduler
from callback_kit.validation import check_metrics

#: How much of the command's stdout (or output file) is read. More than Step Functions' limit: whitespace and
#: formatting do not count, since the output is judged by its compact JSON as a Lambda function's return value is.
MAX_RAW_OUTPUT_BYTES = 4 * MAX_OUTPUT_BYTES
#: Seconds the command gets to finish after SIGTERM before it is killed and the task failed (ECS's default
#: stopTimeout is 30 s: this leaves time to send the failure before ECS's own SIGKILL).
DEFAULT_SHUTDOWN_GRACE = 20.0
#: How often the wait loop looks at the clock while the command runs (for the shutdown grace period).
POLL_SECONDS = 0.1


class RunStatus(enum.Enum):
    """How a ``callback-kit run`` ended, and the command's exit code for it."""

    #: SendTaskSuccess was delivered.
    SUCCEEDED = 0
    #: Step Functions had closed the task (timed out, stopped, answered): nothing could be sent.
    CLOSED = 1
    #: The callback could not be delivered (exit 3, like the other commands' AWS errors).
    UNDELIVERABLE = 3
    #: SendTaskFailure was delivered: the command failed, its output was unusable, or it was stopped.
    FAILED = 4


@dataclass(frozen=True)
class CommandResult:
    """The end of :func:`run_command`.

    Attributes:
        status: what was sent; ``status.value`` is ``callback-kit run``'s exit code.
        returncode: the command's exit code (negative: killed by that signal; ``None``: it never started).
        error: the error name sent with SendTaskFailure, if one was.
    """

    status: RunStatus
    returncode: int | None
    error: str | None = None

    @property
    def exit_code(self) -> int:
        """The exit code ``callback-kit run`` ends with."""
        return self.status.value


class CommandRun:
    """One command run for one task token; :meth:`stop` forwards a shutdown signal to the command.

    Use :func:`run_command` unless you drive the signals yourself (from a thread other than the main one).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        token: str,
        client: Any = None,
        output_file: str | None = None,
        heartbeat_interval: float | None = 30.0,
        scheduler: HeartbeatScheduler | None = None,
        retry: RetryPolicy | None = None,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        env: Mapping[str, str] | None = None,
        token_env: str | None = None,
        stderr: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: Any = None,
    ) -> None:
        if not argv:
            raise ValueError("no command to run")
        self.argv = list(argv)
        self.token = token
        self.output_file = output_file
        self.heartbeat_interval = heartbeat_interval or None
        self.scheduler = scheduler
        self.shutdown_grace = shutdown_grace
        check_metrics(metrics)
        self._recorder = recorder_for(metrics)
        self.completer = Completer(client, retry or RetryPolicy(), observer=self._recorder)
        child_env = dict(os.environ if env is None else env)
        if token_env is not None:
            child_env.pop(token_env, None)  # the command never needs the token: callback-kit answers for it
        self.env = child_env
        self._stderr = StderrRelay(token, stderr)
        self._clock = clock
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._stop_signal: int | None = None
        self._stopped_at: float | None = None
        self._closed = threading.Event()
        self._stdout = b""
        self._ended: float | None = None  # when the command exited

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Forward ``signum`` to the command (now, or as soon as it has started): the runner is shutting down."""
        with self._lock:
            if self._stop_signal is None:
                self._stop_signal, self._stopped_at = signum, self._clock()
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def run(self) -> CommandResult:
        """Run the command and send the task's one callback. Raises nothing for what the command does."""
        started = self._clock()
        result = self._run()
        recorder = self._recorder
        if recorder is not None:
            ended = self._ended if self._ended is not None else started
            latency = None if self._ended is None else self._clock() - self._ended
            recorder.count(_STATUS_NAMES[result.status], ended - started, latency)
            recorder.flush("container")
        return result

    def _run(self) -> CommandResult:
        fp = fingerprint(self.token)
        log = get_logger()
        log.debug("running the task's command", extra={"token_fp": fp, "command": self.argv[0]})
        try:
            child = subprocess.Popen(  # noqa: S603 - running the user's command is the point
                self.argv,
                env=self.env,
                stdout=subprocess.PIPE if self.output_file is None else None,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            return self._answer(failure(ERROR_COMMAND_FAILED, f"the command could not be started: {exc}"), None)
        with self._lock:
            self._child = child
            pending = self._stop_signal
        if pending is not None:  # a stop came while the command was being started
            child.send_signal(pending)
        readers = [threading.Thread(target=self._stderr.relay, args=(child.stderr,), daemon=True)]
        if child.stdout is not None:
            readers.append(threading.Thread(target=self._read_stdout, args=(child.stdout,), daemon=True))
        for reader in readers:
            reader.start()
        scheduler = self.scheduler or get_scheduler()
        beat = None
        if self.heartbeat_interval:
            beat = scheduler.register(self._beat, self.heartbeat_interval, self._close)
        try:
            returncode, killed = self._wait(child)
        finally:
            scheduler.unregister(beat)
            self._ended = self._clock()
        for reader in readers:
            reader.join(timeout=2.0)  # a grandchild may still hold the pipe open: do not wait for it forever
        if self._closed.is_set():
            log.warning("the task was closed while its command ran; nothing sent", extra={"token_fp": fp})
            return CommandResult(RunStatus.CLOSED, returncode)
        return self._answer(self._outcome(returncode, killed), returncode)

    def _wait(self, child: subprocess.Popen[bytes]) -> tuple[int, bool]:
        while True:
            try:
                return child.wait(timeout=POLL_SECONDS), False
            except subprocess.TimeoutExpired:
                stopped_at = self._stopped_at
                if stopped_at is not None and self._clock() - stopped_at >= self.shutdown_grace:
                    child.kill()
                    return child.wait(), True

    def _beat(self) -> bool:
        return self.completer.heartbeat(self.token)

    def _close(self) -> None:
        """A heartbeat says the task is closed: nobody waits for the command any more."""
        self._closed.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.terminate()

    def _outcome(self, returncode: int, killed: bool) -> Outcome:
        if self._stop_signal is not None and (returncode != 0 or killed):
            how = "was killed after the shutdown grace period" if killed else _describe(returncode)
            name = signal.Signals(self._stop_signal).name
            return failure(ERROR_WORKER_SHUTDOWN, f"callback-kit run got {name}; the command {how}{self._tail_text()}")
        if returncode != 0:
            return failure(ERROR_COMMAND_FAILED, f"the command {_describe(returncode)}{self._tail_text()}")
        return self._output()

    def _output(self) -> Outcome:
        if self.output_file is not None:
            try:
                with open(self.output_file, "rb") as f:
                    raw = f.read(MAX_RAW_OUTPUT_BYTES + 1)
            except OSError as exc:
                return failure(ERROR_INVALID_COMMAND_OUTPUT, f"the output file could not be read: {exc}")
            where = f"the output file {self.output_file}"
        else:
            raw, where = self._stdout, "the command's stdout"
        if len(raw) > MAX_RAW_OUTPUT_BYTES:
            return failure(
                ERROR_OUTPUT_TOO_LARGE,
                f"{where} is over {MAX_RAW_OUTPUT_BYTES} bytes; Step Functions takes {MAX_OUTPUT_BYTES} of JSON",
            )
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            return encode_output({})
        try:
            value = json.loads(text)
        except RecursionError:
            return failure(ERROR_INVALID_COMMAND_OUTPUT, f"{where} is JSON nested too deeply to read")
        except ValueError as exc:
            shown = mask_token(text[:200], self.token)
            return failure(ERROR_INVALID_COMMAND_OUTPUT, f"{where} is not JSON ({exc}); it starts: {shown!r}")
        # Judged by its compact JSON, as a Lambda function's return value is: print()'s newline, indentation and
        # escapes do not count against Step Functions' limit.
        return encode_output(value)

    def _answer(self, outcome: Outcome, returncode: int | None) -> CommandResult:
        fp = fingerprint(self.token)
        error = outcome.error if isinstance(outcome, Failure) else None
        try:
            delivery = self.completer.complete(self.token, outcome)
        except CallbackDeliveryError as exc:
            get_logger().error("the callback could not be delivered", extra={"token_fp": fp, "code": exc.code})
            return CommandResult(RunStatus.UNDELIVERABLE, returncode, error)
        if delivery is Delivery.ALREADY_CLOSED:
            return CommandResult(RunStatus.CLOSED, returncode, error)
        get_logger().debug("task answered", extra={"token_fp": fp, "error": error})
        return CommandResult(RunStatus.FAILED if error else RunStatus.SUCCEEDED, returncode, error)

    def _read_stdout(self, stream: IO[bytes]) -> None:
        self._stdout = read_capped(stream, MAX_RAW_OUTPUT_BYTES)

    def _tail_text(self) -> str:
        tail = self._stderr.tail()
        return f"; the end of its stderr:\n{tail}" if tail else "; its stderr was empty"


def run_command(
    argv: Sequence[str],
    *,
    token: str,
    client: Any = None,
    output_file: str | None = None,
    heartbeat_interval: float | None = 30.0,
    forward_signals: bool = True,
    **options: Any,
) -> CommandResult:
    """Run ``argv`` for the task ``token``: beat while it runs, then send its one callback (see the module doc).

    Args:
        argv: the command and its arguments.
        token: the task token (from the environment, say); never logged, never given to the command.
        client: a ``stepfunctions`` client to use instead of the default one.
        output_file: read the output from this file rather than from the command's stdout.
        heartbeat_interval: seconds between heartbeats (``None`` or 0: none). Declare ``HeartbeatSeconds`` at
            about 3x this.
        forward_signals: in the main thread, forward SIGTERM and SIGINT to the command while it runs.
        options: passed to :class:`CommandRun` (``shutdown_grace``, ``scheduler``, ``retry``, ``token_env``,
            ``metrics``: a powertools ``Metrics`` that gets the task's counts and timings with
            ``Source=container``, flushed once at the end; ...).

    Example:
        >>> import sys
        >>> from callback_kit.testing import FakeStepFunctions
        >>> sfn = FakeStepFunctions()
        >>> token = sfn.open_task()
        >>> run_command([sys.executable, "-c", "print('{\\"rows\\": 3}')"], token=token, client=sfn).status
        <RunStatus.SUCCEEDED: 0>
        >>> sfn.outcome(token)
        ('success', {'rows': 3})
    """
    run = CommandRun(
        argv, token=token, client=client, output_file=output_file, heartbeat_interval=heartbeat_interval, **options
    )
    if not forward_signals or threading.current_thread() is not threading.main_thread():
        return run.run()

    def forward(signum: int, frame: FrameType | None) -> None:
        run.stop(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return run.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


#: The metric each end counts under (callback_kit.observe.metrics): an undeliverable answer, as elsewhere, under
#: TaskHandedBack (the task waits for its timeout).
_STATUS_NAMES = {
    RunStatus.SUCCEEDED: "succeeded",
    RunStatus.FAILED: "failed",
    RunStatus.CLOSED: "closed",
    RunStatus.UNDELIVERABLE: "undeliverable",
}


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name} (exit code {returncode})"
        except ValueError:
            return f"was killed by signal {-returncode} (exit code {returncode})"
    return f"exited with code {returncode}"


__all__ = ["DEFAULT_SHUTDOWN_GRACE", "CommandResult", "CommandRun", "RunStatus", "run_command"]
