"""The ``callback-kit`` command: run an activity worker, complete tasks by hand, try a handler offline.

Commands::

    callback-kit activity ARN module:function [--concurrency N] [--heartbeat-interval S] [--max-task-seconds S]
                                              [--worker-name W] [--shutdown-grace-seconds S] [--payload-path P]
    callback-kit send-success [TOKEN] [--output JSON | --output-file FILE] [--durable]
    callback-kit send-failure [TOKEN] --error NAME [--cause TEXT] [--durable]
    callback-kit send-heartbeat [TOKEN] [--durable]
    callback-kit invoke module:handler --event FILE [--remaining-ms N]
    callback-kit check [PATH ...] [--format text|json] [--strict] [--ignore CODES]   (see docs/check.md)
    callback-kit run [--token-env TASK_TOKEN] [--output-file PATH] [--heartbeat-interval S] -- CMD ARGS...

A task token is a bearer credential; keep it out of shell history: give ``-`` to read it from stdin, or leave
it out to read ``$CALLBACK_KIT_TASK_TOKEN``. AWS settings come from the usual environment (``AWS_PROFILE``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``, ...).

``--durable`` says that TOKEN is a Lambda durable function's callback id, answered with the Lambda API
(SendDurableExecutionCallbackSuccess/Failure/Heartbeat). It is never guessed: the two kinds of string cannot be
told apart reliably.

``-v``/``--verbose`` goes before or after the command; ``--version`` prints the version.

Exit codes (``activity`` and ``run`` have their own: see their ``--help``):
    0   done (for ``invoke``: every task got its one callback)
    1   the task was already closed: timed out, its execution stopped, or already answered (for ``invoke``: a
        record got no callback and would be redelivered)
    2   usage: bad arguments, unreadable file, invalid JSON, an output over 262,144 bytes, an invalid token
        (one Step Functions did not issue: quoted, URL-encoded, truncated); nothing was sent
    3   AWS error: Step Functions could not be reached or refused the call after retries (throttling, KMS), or
        the AWS configuration is unusable (no region, no credentials: never retried; the message says what to set)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from callback_kit import __version__
from callback_kit.awsconfig import configuration_problem, region_from_arn
from callback_kit.check.command import add_parser as add_check_parser
from callback_kit.check.command import run as run_check
from callback_kit.exceptions import CallbackDeliveryError, CallbackKitError, InvalidOutputError, InvalidTokenError
from callback_kit.logs import fingerprint, get_logger
from callback_kit.send import Delivery, send_failure, send_heartbeat, send_success
from callback_kit.task.answers import DURABLE, STEP_FUNCTIONS, Answers

if TYPE_CHECKING:
    from callback_kit.activity import ActivityWorker

ENV_TOKEN = "CALLBACK_KIT_TASK_TOKEN"  # noqa: S105 - the name of a variable, not a secret
EXIT_OK, EXIT_CLOSED, EXIT_USAGE, EXIT_AWS = 0, 1, 2, 3
#: The argument that means "read it from stdin".
STDIN = "-"
EXIT_CODES = """exit codes:
  0  done
  1  the task was already closed (timed out, execution stopped, or already answered)
  2  usage error: bad arguments, unreadable file, invalid JSON, output too large, or an invalid token (one
     Step Functions did not issue); nothing was sent
  3  AWS error: Step Functions unreachable or refusing the call after retries, or no region/credentials"""
INVOKE_EXIT_CODES = """exit codes:
  0  every task in the event got exactly one callback (success or failure)
  1  a record got no callback: Lambda would redeliver it (no token, or the handler raised)
  2  usage error: bad arguments, unreadable or invalid event file, handler not found"""
ACTIVITY_EXIT_CODES = """exit codes:
  0  stopped on SIGTERM/SIGINT after draining the tasks in flight (those still running at the end of the grace
     period are failed with CallbackKit.WorkerShutdown)
  2  usage error: bad ARN, function not found or not usable as a task function, bad option; nothing was polled
  3  AWS configuration unusable (no region, no or rejected credentials, unknown profile, expired SSO session):
     no poll can succeed, so the worker stops and drains instead of backing off forever; the message says what
     to set
Any other poll error (throttling, ActivityWorkerLimitExceeded, 5xx, connection errors, AccessDenied) does not
stop the worker: it is counted and followed by a backoff, and polling goes on."""
_TOKEN_HELP = f"the task token; '-' reads it from stdin; omitted: ${ENV_TOKEN}"
_CLOSED_MESSAGE = (
    "the task is already closed: it timed out, its execution stopped, or it was already answered "
    "(Step Functions answered TaskTimedOut or TaskDoesNotExist; Lambda, CallbackTimeoutException); nothing changed"
)


class UsageError(CallbackKitError):
    """The command line cannot be acted on (exit code 2)."""


def main(
    argv: Sequence[str] | None = None,
    *,
    client: Any = None,
    lambda_client: Any = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the ``callback-kit`` command and return its exit code.

    Args:
        client: a ``stepfunctions`` client to use instead of the default one (tests inject a fake).
        lambda_client: a ``lambda`` client (or fake) for the ``--durable`` send commands.

    Example:
        >>> from callback_kit.testing import FakeStepFunctions
        >>> fake = FakeStepFunctions()
        >>> main(["send-heartbeat", fake.open_task()], client=fake)
        SendTaskHeartbeat delivered for tok-...
        0
    """
    io = _IO(stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr)
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(io.out), contextlib.redirect_stderr(io.err):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on a usage error, 0 after --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    _quiet_logs(args.verbose or args.command in ("activity", "run"))
    command: Callable[[argparse.Namespace, _IO, Any], int] = args.run
    try:
        args.lambda_client = lambda_client
        return command(args, io, client)
    except (UsageError, InvalidOutputError, ValueError, OSError) as exc:
        io.print_err(f"callback-kit {args.command}: error: {exc}")
        return EXIT_USAGE
    except InvalidTokenError as exc:
        # Not "already closed": the string is not a token Step Functions issued, and the real task still waits.
        io.print_err(
            f"callback-kit {args.command}: error: invalid token: Step Functions did not issue it (quoted, "
            f"URL-encoded, truncated, or taken from the wrong field?); nothing was sent ({exc})"
        )
        return EXIT_USAGE
    except Exception as exc:
        problem = configuration_problem(exc)
        if problem is not None:  # no region, no credentials: retrying cannot help, so say what to set
            io.print_err(f"callback-kit {args.command}: AWS configuration error: {problem}")
            return EXIT_AWS
        if isinstance(exc, CallbackDeliveryError):
            io.print_err(f"callback-kit {args.command}: AWS error ({exc.code or 'no response'}) on {exc.api}: {exc}")
            return EXIT_AWS
        from botocore.exceptions import BotoCoreError

        if isinstance(exc, BotoCoreError):  # endpoint unreachable, ...
            io.print_err(f"callback-kit {args.command}: AWS error: {exc}")
            return EXIT_AWS
        raise


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``callback-kit`` command."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="callback-kit",
        description="Answer AWS Step Functions callback tasks: run an activity worker, complete a task by hand, "
        "or try a Lambda handler offline.",
        epilog=EXIT_CODES + "\n\ninvoke has its own exit codes: see 'callback-kit invoke --help'.",
        formatter_class=fmt,
    )
    verbose_help = "log callback-kit's INFO messages to stderr"
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    parser.add_argument("--version", action="version", version=f"callback-kit {__version__}")
    # -v after the command too. SUPPRESS: a subcommand without -v must not reset a -v given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "activity",
        parents=[common],
        help="run an activity worker until SIGTERM/SIGINT",
        description="Poll an activity with GetActivityTask and run module:function on each task; stop cleanly on "
        "SIGTERM/SIGINT (tasks still running after the grace period are failed with CallbackKit.WorkerShutdown).",
        epilog=ACTIVITY_EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("activity_arn", metavar="ARN", help="the activity ARN (arn:aws:states:REGION:ACCOUNT:activity:NAME)")
    p.add_argument("target", metavar="module:function", help="the function to run (a @callback_handler works too)")
    p.add_argument("--concurrency", type=int, default=1, help="open polls and tasks run at once (default 1)")
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        help="seconds between heartbeats, 0 for none (default: the handler's, else 30)",
    )
    p.add_argument("--max-task-seconds", type=float, help="fail a task running longer with CallbackKit.TaskTimeout")
    p.add_argument("--worker-name", help="the name shown in the execution history (default host:pid)")
    p.add_argument("--shutdown-grace-seconds", type=float, default=25.0, help="time in-flight tasks get on stop")
    p.add_argument(
        "--payload-path",
        metavar="PATH",
        help="dotted path of the payload inside the task input (default: the handler's payload_path, else the input)",
    )
    _add_metrics_options(p)
    p.set_defaults(run=_activity)

    p = sub.add_parser(
        "send-success",
        parents=[common],
        help="complete a task successfully",
        description="Send SendTaskSuccess. The output must be JSON of at most 262,144 bytes (default: {}).",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("token", nargs="?", metavar="TOKEN", help=_TOKEN_HELP)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--output", metavar="JSON", help="the output, as JSON text")
    group.add_argument("--output-file", metavar="FILE", help="a file holding the output JSON ('-': stdin)")
    _durable_flag(p)
    p.set_defaults(run=_send_success)

    p = sub.add_parser(
        "send-failure",
        parents=[common],
        help="fail a task with an error name and cause",
        description="Send SendTaskFailure. The error name is what the state machine's Retry/Catch ErrorEquals "
        "match (at most 256 characters, not starting with 'States.'); the cause is cut to 32,768 bytes.",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("token", nargs="?", metavar="TOKEN", help=_TOKEN_HELP)
    p.add_argument("--error", required=True, help="the error name")
    p.add_argument("--cause", default="", help="a human-readable cause")
    _durable_flag(p)
    p.set_defaults(run=_send_failure)

    p = sub.add_parser(
        "send-heartbeat",
        parents=[common],
        help="send one heartbeat for a task",
        description="Send SendTaskHeartbeat (exit code 1 tells a script the task is closed and work can stop).",
        epilog=EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("token", nargs="?", metavar="TOKEN", help=_TOKEN_HELP)
    _durable_flag(p)
    p.set_defaults(run=_send_heartbeat)

    p = sub.add_parser(
        "invoke",
        parents=[common],
        help="run a Lambda handler on an event file against an in-memory Step Functions",
        description="A docker-less stand-in for 'sam local invoke': run module:handler in-process on an event "
        "(SQS batch, EventBridge envelope, direct payload, or a GetActivityTask response {taskToken, input}) "
        "and print the callback it would have sent and what the handler returned. Nothing reaches AWS.",
        epilog=INVOKE_EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("target", metavar="module:handler", help="e.g. handlers.order_check:handler")
    p.add_argument("--event", required=True, metavar="FILE", help="the event JSON file ('-': stdin)")
    p.add_argument("--remaining-ms", type=int, default=900_000, help="the Lambda time left (default 900000)")
    p.set_defaults(run=_invoke)

    add_check_parser(sub, [common]).set_defaults(run=_check)
    from callback_kit.container import DEFAULT_SHUTDOWN_GRACE, DEFAULT_TOKEN_ENV, RUN_EXIT_CODES

    p = sub.add_parser(
        "run",
        parents=[common],
        help="run a command for a task whose token is in the environment (ecs:runTask.waitForTaskToken)",
        description="Run CMD as a child process, heartbeat while it runs, then answer the task: SendTaskSuccess "
        "with its JSON stdout (or --output-file), or SendTaskFailure CallbackKit.CommandFailed with the exit code "
        "and the end of its stderr. SIGTERM/SIGINT are forwarded to CMD; a task it does not finish is failed with "
        "CallbackKit.WorkerShutdown. The token is removed from CMD's environment.",
        epilog=RUN_EXIT_CODES,
        formatter_class=fmt,
    )
    p.add_argument("--token-env", default=DEFAULT_TOKEN_ENV, metavar="NAME", help="the variable holding the token")
    p.add_argument("--output-file", metavar="PATH", help="read the output from this file instead of CMD's stdout")
    p.add_argument("--heartbeat-interval", type=float, help="seconds between heartbeats, 0 for none (default 30)")
    p.add_argument("--shutdown-grace-seconds", type=float, default=DEFAULT_SHUTDOWN_GRACE, help="after SIGTERM")
    _add_metrics_options(p)
    p.add_argument("command_argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...", help="the command to run")
    p.set_defaults(run=_run)
    return parser


def _add_metrics_options(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--metrics",
        action="store_true",
        help="write task metrics (CloudWatch EMF, on stdout) to the namespace $POWERTOOLS_METRICS_NAMESPACE",
    )
    group.add_argument("--metrics-namespace", metavar="NS", help="write task metrics (EMF) to this namespace")


def _metrics(args: argparse.Namespace) -> Any:
    """The powertools ``Metrics`` that ``--metrics``/``--metrics-namespace`` ask for, or ``None``.

    Its service comes from ``$POWERTOOLS_SERVICE_NAME``, as in Lambda.
    """
    if not (args.metrics or args.metrics_namespace):
        return None
    namespace = args.metrics_namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "").strip()
    if not namespace:
        raise UsageError("--metrics needs a namespace: set $POWERTOOLS_METRICS_NAMESPACE or give --metrics-namespace")
    from aws_lambda_powertools import Metrics

    return Metrics(namespace=namespace)


# -- commands ---------------------------------------------------------------------------------------------------
def _activity(args: argparse.Namespace, io: _IO, client: Any) -> int:
    if not args.activity_arn.startswith("arn:") or ":activity:" not in args.activity_arn:
        raise UsageError(f"not an activity ARN: {args.activity_arn!r}")
    if client is None:
        _use_region_of(args.activity_arn, io)
    target = load_target(args.target)
    try:
        worker = _build_worker(args, target, client)
    except TypeError as exc:  # a function or option that cannot serve (see callback_kit.validation): usage
        raise UsageError(str(exc)) from None
    stats = worker.run()
    io.print_err(
        f"callback-kit activity: stopped; started {stats.started}, succeeded {stats.succeeded}, "
        f"failed {stats.failed} (timed out {stats.timed_out}, shut down {stats.shut_down}), "
        f"already closed {stats.closed}, undeliverable {stats.undeliverable}, poll errors {stats.poll_errors}"
    )
    return EXIT_OK


def _build_worker(args: argparse.Namespace, target: Callable[[Any], Any], client: Any) -> ActivityWorker:
    from callback_kit.activity import ActivityWorker

    return ActivityWorker(
        args.activity_arn,
        target,
        concurrency=args.concurrency,
        heartbeat_interval=args.heartbeat_interval,
        client=client,
        worker_name=args.worker_name,
        max_task_seconds=args.max_task_seconds,
        shutdown_grace_seconds=args.shutdown_grace_seconds,
        payload_path=args.payload_path,
        metrics=_metrics(args),
    )


def _send_success(args: argparse.Namespace, io: _IO, client: Any) -> int:
    token = read_token(args.token, io.stdin)
    if args.output_file is not None:
        if args.output_file == STDIN and args.token == STDIN:
            raise UsageError("the token and the output cannot both come from stdin")
        text = io.stdin.read() if args.output_file == STDIN else _read_file(args.output_file)
    else:
        text = args.output if args.output is not None else "{}"
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the output is not valid JSON: {exc}") from None
    answers, where = _where(args, client)
    return _report(io, answers.success_api, token, send_success(token, value, **where))


def _send_failure(args: argparse.Namespace, io: _IO, client: Any) -> int:
    token = read_token(args.token, io.stdin)
    answers, where = _where(args, client)
    return _report(io, answers.failure_api, token, send_failure(token, args.error, args.cause, **where))


def _send_heartbeat(args: argparse.Namespace, io: _IO, client: Any) -> int:
    token = read_token(args.token, io.stdin)
    answers, where = _where(args, client)
    return _report(io, answers.heartbeat_api, token, send_heartbeat(token, **where))


def _durable_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--durable",
        action="store_true",
        help="TOKEN is a Lambda durable function's callback id: answer it with the Lambda API "
        "(SendDurableExecutionCallback*; output up to 1,048,576 bytes, less with a botocore older than 1.44)",
    )


def _where(args: argparse.Namespace, client: Any) -> tuple[Answers, dict[str, Any]]:
    """The backend the send commands answer, and the keyword arguments that send there."""
    if args.durable:
        return DURABLE, {"kind": "durable", "lambda_client": getattr(args, "lambda_client", None)}
    return STEP_FUNCTIONS, {"client": client}


def _invoke(args: argparse.Namespace, io: _IO, client: Any) -> int:
    from callback_kit.invoke import invoke

    text = io.stdin.read() if args.event == STDIN else _read_file(args.event)
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the event is not valid JSON: {exc}") from None
    return invoke(load_target(args.target), event, out=io.out, remaining_ms=args.remaining_ms)


def _check(args: argparse.Namespace, io: _IO, client: Any) -> int:
    return run_check(args, io.out, io.err)


def _run(args: argparse.Namespace, io: _IO, client: Any) -> int:
    from callback_kit.container import main_from_args

    return main_from_args(
        args.command_argv,
        token_env=args.token_env,
        output_file=args.output_file,
        heartbeat_interval=args.heartbeat_interval,
        shutdown_grace=args.shutdown_grace_seconds,
        client=client,
        metrics=_metrics(args),
    )


# -- helpers ----------------------------------------------------------------------------------------------------
def read_token(given: str | None, stdin: IO[str]) -> str:
    """The token from the argument, from stdin (``-``) or from ``$CALLBACK_KIT_TASK_TOKEN``.

    Raises:
        UsageError: no token anywhere, or an empty one.
    """
    if given == STDIN:
        token = stdin.read().strip()
    elif given is not None:
        token = given.strip()
    else:
        token = os.environ.get(ENV_TOKEN, "").strip()
        if not token:
            raise UsageError(f"no task token: give TOKEN, '-' to read it from stdin, or set ${ENV_TOKEN}")
    if not token:
        raise UsageError("the task token is empty")
    return token


def load_target(spec: str) -> Callable[[Any], Any]:
    """Import ``module:attribute`` (the attribute may be dotted) from the current directory or ``sys.path``.

    Raises:
        UsageError: the spec is malformed, the module cannot be imported, or the attribute is not callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"expected module:function, got {spec!r}")
    # As uvicorn and gunicorn do: a console script's sys.path starts at its own bin/, not at the project.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{spec} is not callable")
    target: Callable[[Any], Any] = obj
    return target


def _use_region_of(arn: str, io: _IO) -> None:
    """Talk to the region the ARN names: the activity, and the tokens its polls hand out, live only there."""
    import botocore.session

    region = region_from_arn(arn)
    if region is None:
        return
    configured = botocore.session.get_session().get_config_variable("region")
    if configured != region:
        if configured is not None:
            io.print_err(f"callback-kit activity: using the ARN's region {region}, not the configured {configured}")
        # This process's clients are all built later, from the environment: the poll client and the callbacks'.
        os.environ["AWS_DEFAULT_REGION"] = region


def _report(io: _IO, api: str, token: str, delivery: Delivery) -> int:
    if delivery is Delivery.ALREADY_CLOSED:
        io.print_err(f"callback-kit: {api} for {fingerprint(token)}: {_CLOSED_MESSAGE}")
        return EXIT_CLOSED
    io.print_out(f"{api} delivered for {fingerprint(token)}")
    return EXIT_OK


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _quiet_logs(verbose: bool) -> None:
    """Send callback-kit's log lines to stderr (stdout carries the command's result), INFO only when asked."""
    logger = get_logger()
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler):
        handler.stream = _CurrentStderr()


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the time of writing (pytest and others swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _IO:
    def __init__(self, stdin: IO[str], out: IO[str], err: IO[str]) -> None:
        self.stdin, self.out, self.err = stdin, out, err

    def print_out(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def print_err(self, text: str) -> None:
        print(text, file=self.err, flush=True)


__all__ = ["EXIT_AWS", "EXIT_CLOSED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main", "read_token"]
