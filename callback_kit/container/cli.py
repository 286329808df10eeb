"""``callback-kit run``'s command-line body: the token from the environment, then :func:`run_command`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from callback_kit.container.command import DEFAULT_SHUTDOWN_GRACE, run_command

__all__ = ["DEFAULT_TOKEN_ENV", "RUN_EXIT_CODES", "main_from_args"]

#: ``callback-kit run``'s exit codes (its ``--help`` epilog).
RUN_EXIT_CODES = """exit codes:
  0  the command succeeded and its output was sent (SendTaskSuccess)
  1  the task was already closed (timed out, execution stopped, or already answered); nothing sent
  2  usage error: bad arguments, no token in the environment; the command was not run, nothing sent
  3  AWS error: the callback could not be delivered after retries
  4  the task was failed (SendTaskFailure): the command failed, its output was unusable, or it was stopped"""
DEFAULT_TOKEN_ENV = "TASK_TOKEN"  # noqa: S105 - the name of a variable, not a secret


def main_from_args(
    command: Sequence[str],
    *,
    token_env: str = DEFAULT_TOKEN_ENV,
    output_file: str | None = None,
    heartbeat_interval: float | None = None,
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
    client: Any = None,
    environ: Mapping[str, str] | None = None,
    metrics: Any = None,
) -> int:
    """``callback-kit run``'s body: read the token from ``$token_env``, run the command, return the exit code.

    ``heartbeat_interval`` ``None`` means ``$CALLBACK_KIT_HEARTBEAT_INTERVAL`` or 30 s; 0 turns heartbeats off.
    ``metrics``, a powertools ``Metrics``, gets the task's counts and timings with ``Source=container``.

    Example:
        >>> main_from_args(["true"], environ={})
        Traceback (most recent call last):
        ...
        ValueError: no task token: $TASK_TOKEN is not set (see --token-env); nothing was run

    Raises:
        ValueError: a usage error (no command, no token): nothing was run and nothing sent.
    """
    from callback_kit.handler import HandlerOptions
    from callback_kit.sources.tokens import check_token

    argv = list(command[1:] if command and command[0] == "--" else command)
    environ = os.environ if environ is None else environ
    raw = environ.get(token_env, "").strip()
    if not raw:
        raise ValueError(f"no task token: ${token_env} is not set (see --token-env); nothing was run")
    token, problem = check_token(raw)
    if token is None:
        raise ValueError(f"${token_env} does not hold a usable task token: {problem}; nothing was run")
    if not argv:
        raise ValueError("no command: give it after --, e.g. callback-kit run -- python job.py")
    interval = HandlerOptions.resolve(heartbeat_interval=heartbeat_interval).heartbeat_interval
    result = run_command(
        argv,
        token=token,
        client=client,
        output_file=output_file,
        heartbeat_interval=interval,
        shutdown_grace=shutdown_grace,
        env=environ,
        token_env=token_env,
        metrics=metrics,
    )
    return result.exit_code
