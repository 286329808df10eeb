"""``callback-kit run``: answer a task whose token came in the environment, by running a command.

``ecs:runTask.waitForTaskToken`` hands a container its token in an environment override (``TASK_TOKEN`` in the
public samples); the container must beat and complete the task itself. :func:`run_command` (and ``callback-kit run
-- CMD ARGS...``, the container's entry point) does that for any command:

* the command runs as a child process, without the token in its environment (it needs none, and cannot leak it);
  its stderr passes through (with any copy of the token masked) and its last lines are kept for the failure cause;
* heartbeats are sent while it runs; a heartbeat answered "task closed" stops the command (SIGTERM) and nothing
  is sent;
* exit 0: SendTaskSuccess with the command's stdout, or the output file, as the output (JSON; empty means ``{}``);
  output that is not JSON or is missing fails the task with ``CallbackKit.InvalidCommandOutput``, output over
  262,144 bytes with ``CallbackKit.OutputTooLarge``;
* non-zero exit, death by a signal, or a command that cannot start: SendTaskFailure ``CallbackKit.CommandFailed``,
  the cause naming the exit code and holding the end of stderr;
* SIGTERM or SIGINT to this process (ECS stopping the task) is forwarded to the command; if the command then
  does not finish successfully, or within ``shutdown_grace`` seconds, the task is failed with
  ``CallbackKit.WorkerShutdown``.
"""

from __future__ import annotations

from callback_kit.container.cli import DEFAULT_TOKEN_ENV, RUN_EXIT_CODES, main_from_args
from callback_kit.container.command import (
    DEFAULT_SHUTDOWN_GRACE,
    CommandResult,
    CommandRun,
    RunStatus,
    run_command,
)

__all__ = [
    "DEFAULT_SHUTDOWN_GRACE",
    "DEFAULT_TOKEN_ENV",
    "RUN_EXIT_CODES",
    "CommandResult",
    "CommandRun",
    "RunStatus",
    "main_from_args",
    "run_command",
]
