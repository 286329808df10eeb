"""moto's private API, in one module: every place the simulator reaches into moto, and what each one relies on.

moto's Step Functions interpreter (``moto.stepfunctions.parser``, a copy of LocalStack's) and its backends are not
public API, and patch releases change them: 5.2.6 removed the exception class every service error was built
from. So everything the simulator takes from moto beyond ``mock_aws`` and boto3 is here, and each thing it relies
on is a named :class:`Contract` in :data:`CONTRACTS`. :func:`require` checks them all before a simulator starts,
so that a moto release that breaks one stops with a single line naming it, the installed version, the supported
range and the command that installs a supported moto; ``tests/simulator/test_moto_adapter.py`` runs each contract
as its own test, so that CI's canary names the moto behaviour that moved instead of failing forty state machines.

The patches themselves (what each corrects in moto, and how AWS behaves instead) are in
:func:`interpreter_patches`; :mod:`~callback_kit.simulator.interpreter` applies and undoes them.

Example:
    >>> SUPPORTED_MOTO
    '>=5.2.5,<5.2.7'
    >>> supported("5.2.6"), supported("5.2.7"), supported("5.1.22")
    (True, False, False)
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, cast

__all__ = [
    "CONTRACTS",
    "FIX_COMMAND",
    "SUPPORTED_MOTO",
    "Contract",
    "MotoContractError",
    "UnsupportedMotoError",
    "require",
    "service_error",
    "supported",
]

# The range CI runs: the lowest-versions job runs the floor, the locked job the newest release at the last lock.
# moto's patch releases change its private API (5.2.6 touched 581 files), so the ceiling is the next patch release.
_FLOOR = (5, 2, 5)
_CEILING = (5, 2, 7)
SUPPORTED_MOTO = ">=5.2.5,<5.2.7"
FIX_COMMAND = f"pip install 'moto[stepfunctions,sqs,events,dynamodb,awslambda-simple,server]{SUPPORTED_MOTO}'"

_PARSER = "moto.stepfunctions.parser"
_CALLBACK_STATE = f"{_PARSER}.asl.component.state.exec.state_task.service.state_task_service_callback"
_CALLBACKS = f"{_PARSER}.asl.eval.callback.callback"


class UnsupportedMotoError(ImportError):
    """moto is missing, or its private API is not what the simulator was written for; the message is one line."""


class MotoContractError(Exception):
    """One :class:`Contract` does not hold for the installed moto."""


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) or "0"
        parts.append(int(digits))
    return tuple(parts)


def supported(version: str) -> bool:
    """Whether ``version`` of moto is inside :data:`SUPPORTED_MOTO`."""
    return _FLOOR <= _version_tuple(version) < _CEILING


def installed_version() -> str | None:
    """The installed moto's version, or ``None``."""
    try:
        return metadata.version("moto")
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Contract:
    """One thing about moto's private API the simulator relies on.

    Attributes:
        name: a short name, used in test ids and in :class:`UnsupportedMotoError`'s message.
        target: ``"module:Attr.attr"``, what must exist.
        relies_on: the moto behaviour relied on, in words.
        params: when given, the parameter names the callable must take first, in order (``self`` included).
        keywords: parameter names the callable must take, wherever they are.
        needs: a module the target needs that not every simulator has (moto's ``server`` extra brings flask):
            :func:`require` skips the contract when it is missing; the tests, which have it, always check it.
    """

    name: str
    target: str
    relies_on: str
    params: tuple[str, ...] | None = None
    keywords: tuple[str, ...] = ()
    needs: str | None = None

    def resolve(self) -> Any:
        """Import and return the target.

        Raises:
            MotoContractError: it is missing, or takes other parameters than :attr:`params`.
        """
        module_name, _, path = self.target.partition(":")
        try:
            value: Any = importlib.import_module(module_name)
            for attr in path.split(".") if path else ():
                value = getattr(value, attr)
        except (ImportError, AttributeError) as exc:
            raise MotoContractError(
                f"{self.name}: {self.target} is gone ({exc}); relied on: {self.relies_on}"
            ) from None
        if self.params is not None or self.keywords:
            taken = tuple(inspect.signature(value).parameters)
            if taken[: len(self.params or ())] != (self.params or ()) or not set(self.keywords) <= set(taken):
                wanted = (*(self.params or ()), *self.keywords)
                raise MotoContractError(
                    f"{self.name}: {self.target} takes {taken}, not {wanted}; relied on: {self.relies_on}"
                )
        return value


CONTRACTS: tuple[Contract, ...] = (
    Contract(
        "service-exception",
        "moto.core.exceptions:ServiceException",
        "ServiceException(code, message) is the error moto's responses serialise with that code",
    ),
    Contract(
        "callback-attempt",
        f"{_CALLBACK_STATE}:StateTaskServiceCallback._evaluate_with_timeout",
        "each attempt of a callback task runs through _evaluate_with_timeout(env)",
        ("self", "env"),
    ),
    Contract(
        "callback-wait",
        f"{_CALLBACK_STATE}:StateTaskServiceCallback._eval_wait_for_task_token",
        "a .waitForTaskToken task waits in _eval_wait_for_task_token and returns a callback outcome",
        ("self", "env", "timeout_seconds", "callback_endpoint", "heartbeat_endpoint"),
    ),
    Contract(
        "wait-for-token-condition",
        f"{_PARSER}.asl.component.state.exec.state_task.service.resource:ResourceCondition.WaitForTaskToken",
        "a task's resource.condition tells a .waitForTaskToken task from others",
    ),
    Contract(
        "new-task-token",
        f"{_PARSER}.asl.eval.states:ContextObject.update_task_token",
        "the context object can issue a fresh task token for the state being run",
        ("self",),
    ),
    Contract(
        "callback-outcomes",
        f"{_CALLBACKS}:CallbackOutcomeFailure",
        "callback outcomes are built as CallbackOutcomeSuccess(callback_id, output), "
        "CallbackOutcomeFailure(callback_id, error, cause), CallbackOutcomeTimedOut(callback_id), HeartbeatTimedOut()",
        ("callback_id", "error", "cause"),
    ),
    Contract(
        "program-stopped",
        f"{_PARSER}.asl.eval.environment:Environment.set_error",
        "an execution's end is recorded by Environment.set_error(error), and a stop leaves a ProgramStopped state",
        ("self", "error"),
    ),
    Contract(
        "backend-callbacks",
        f"{_PARSER}.models:StepFunctionsParserBackend.send_task_failure",
        "SendTask* reach the backend's send_task_success(task_token, outcome), "
        "send_task_failure(task_token, error, cause) and send_task_heartbeat(task_token)",
        ("self", "task_token", "error", "cause"),
    ),
    Contract(
        "backend-definitions",
        f"{_PARSER}.models:StepFunctionsParserBackend.create_state_machine",
        "create/update_state_machine take the definition as their second argument",
        ("self", "name", "definition"),
    ),
    Contract(
        "response-send-task-failure",
        "moto.stepfunctions.responses:StepFunctionResponse.send_task_failure",
        "the SendTaskFailure request handler is a method of StepFunctionResponse (moto's drops the cause)",
        ("self",),
    ),
    Contract(
        "lambda-invoke-seam",
        "moto.awslambda_simple.models:LambdaSimpleBackend.invoke",
        "the docker-less Lambda backend answers invokes through invoke(function_name, qualifier, body, headers, "
        "response_headers), the seam moto documents for it",
        ("self", "function_name", "qualifier", "body", "headers", "response_headers"),
    ),
    Contract(
        "threaded-server",
        "moto.server:ThreadedMotoServer.get_host_and_port",
        "ThreadedMotoServer(ip_address, port, verbose) runs moto on a free port and reports it",
        needs="flask",
    ),
    Contract(
        "program-stopped-state",
        f"{_PARSER}.asl.eval.program_state:ProgramStopped",
        "a stopped execution's program state is a ProgramStopped",
    ),
    Contract(
        "empty-result",
        "moto.core.responses:EmptyResult",
        "a request handler with nothing to return answers EmptyResult()",
    ),
    Contract(
        "backend-executions",
        f"{_PARSER}.models:StepFunctionsParserBackend._get_executions",
        "the backend lists its executions, each with exec_worker.env.callback_pool_manager",
        ("self", "execution_status"),
    ),
    Contract(
        "activity-executions",
        f"{_PARSER}.models:Execution",
        "executions are built by the module-level name Execution, and take the activity_store the interpreter "
        "looks activities up in",
        keywords=("activity_store",),
    ),
    Contract(
        "activity-tasks",
        f"{_PARSER}.backend.activity:Activity.get_task",
        "Activity(arn, name) holds the tasks scheduled on it; get_task() takes the oldest or raises IndexError",
        ("self",),
    ),
    Contract(
        "activity-start",
        f"{_CALLBACKS}:ActivityCallbackEndpoint.notify_activity_task_start",
        "telling an activity task's endpoint that a worker took it logs ActivityStarted and arms its timers",
        ("self", "worker_name"),
    ),
)


def check_contracts() -> list[str]:
    """The problems with the installed moto, one line each (empty when every contract holds)."""
    problems: list[str] = []
    for contract in CONTRACTS:
        if contract.needs is not None and importlib.util.find_spec(contract.needs) is None:
            continue  # moto_server() says what to install when it is used
        try:
            contract.resolve()
        except MotoContractError as exc:
            problems.append(str(exc))
    return problems


_checked = False


def require() -> None:
    """Check that a moto the simulator knows is installed; call before touching moto.

    Raises:
        UnsupportedMotoError: moto is missing or breaks a contract; the message is one line.
    """
    global _checked
    if _checked:
        return
    try:
        import moto  # noqa: F401
    except ImportError as exc:
        raise UnsupportedMotoError(
            f"moto cannot be imported ({exc}); the local Step Functions simulator needs moto{SUPPORTED_MOTO}: "
            f"pip install 'callback-kit[test]' (or {FIX_COMMAND})"
        ) from None
    version = installed_version() or "(unknown version)"
    problems = check_contracts()
    if problems:
        names = ", ".join(problem.split(":", 1)[0] for problem in problems)
        raise UnsupportedMotoError(
            f"moto {version} is not supported by callback-kit's simulator (supported: moto{SUPPORTED_MOTO}; "
            f"changed: {names}); fix: {FIX_COMMAND}"
        )
    if not supported(version):
        warnings.warn(
            f"moto {version} is outside the range callback-kit's simulator is tested with (moto{SUPPORTED_MOTO}); "
            f"if state machines misbehave: {FIX_COMMAND}",
            stacklevel=2,
        )
    _checked = True


def _resolve(name: str) -> Any:
    for contract in CONTRACTS:
        if contract.name == name:
            return contract.resolve()
    raise KeyError(name)


# -- errors ------------------------------------------------------------------------------------------------


def service_error(code: str, message: str) -> Exception:
    """An exception that moto's request handling answers as the service error ``code`` with ``message``.

    A subclass of moto's ``ServiceException`` defined outside moto: moto serialises it with the model of the
    service being called (a ``moto.core`` one would be looked up in a service named "core" by moto 5.2.5).
    """
    return _service_error_class()(code, message)


_error_class: type[Exception] | None = None


def _service_error_class() -> type[Exception]:
    global _error_class
    if _error_class is None:
        base = _resolve("service-exception")
        _error_class = type("SimulatorServiceError", (base,), {"__module__": __name__})
    return _error_class


def error_code(exc: BaseException) -> str:
    """The AWS error code of an exception moto raised (a ``ServiceException`` or an older ``JsonRESTError``)."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    return str(getattr(exc, "error_type", None) or type(exc).__name__)


# -- callback outcomes ---------------------------------------------------------------------------------------


def outcome_success(token: str, output: str) -> Any:
    """moto's outcome of a SendTaskSuccess."""
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeSuccess

    return CallbackOutcomeSuccess(callback_id=token, output=output)


def outcome_failure(token: str, error: str | None, cause: str | None) -> Any:
    """moto's outcome of a SendTaskFailure."""
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeFailure

    return CallbackOutcomeFailure(callback_id=token, error=error, cause=cause)


# -- backends ------------------------------------------------------------------------------------------------


def stepfunctions_backend(account_id: str, region: str) -> Any:
    """moto's Step Functions (interpreter) backend of one account and region."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    return stepfunctions_parser_backends[account_id][region]


def lambda_backend(account_id: str, region: str) -> Any:
    """moto's docker-less Lambda backend of one account and region (its ``invoke`` is the documented seam)."""
    from moto.awslambda_simple.models import lambda_simple_backends

    return lambda_simple_backends[account_id][region]


def threaded_server() -> Any:
    """A ``ThreadedMotoServer`` on 127.0.0.1 and a free port, not started."""
    from moto.server import ThreadedMotoServer

    return ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)


def user_config() -> dict[str, Any]:
    """moto's process-wide configuration (what ``mock_aws(config=...)`` and ``/moto-api/config`` change)."""
    from moto.core.config import default_user_config

    return cast("dict[str, Any]", default_user_config)  # a TypedDict in moto's annotations; patched as a dict


# -- the interpreter patches ---------------------------------------------------------------------------------

# The ledger's TimeoutSeconds clock runs out this much before moto's own timer for the state, so that a callback
# accepted just before the deadline has time to reach the task before moto's timer decides "timed out".
_TIMER_MARGIN = 0.1


@dataclass(frozen=True)
class Patch:
    """A class attribute of moto's replaced while a simulator runs."""

    owner: type
    name: str
    value: Any


def interpreter_patches() -> list[Patch]:
    """What the simulator replaces in moto's Step Functions so that callback tasks behave as on AWS.

    Each replacement hands a decision moto spreads over several threads to the
    :data:`~callback_kit.simulator.ledger.LEDGER`; the comment on each says what moto does and what AWS does.
    """
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackOutcomeTimedOut, HeartbeatTimedOut
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    from callback_kit.simulator.callback_api import strict_backend_method
    from callback_kit.simulator.definitions import UnsupportedDefinitionError, check_definition
    from callback_kit.simulator.ledger import LEDGER, Closed

    wait_for_token = ResourceCondition.WaitForTaskToken
    original_attempt = StateTaskServiceCallback._evaluate_with_timeout
    original_wait = StateTaskServiceCallback._eval_wait_for_task_token
    original_set_error = Environment.set_error

    # moto issues a task's token once per state entry, so a Retry reused the first attempt's token and its
    # outcome; AWS issues a new token for every attempt. And every attempt is opened in the ledger when it starts
    # (heartbeats and callbacks are accepted from the moment the token exists) and closed when it ends.
    def evaluate_with_timeout(self: Any, env: Any) -> Any:
        task = env.states.context_object.context_object_data.get("Task") or {}
        token = task.get("Token")
        if self.resource.condition != wait_for_token or not token:
            return original_attempt(self, env)
        if LEDGER.issued(token):
            token = env.states.context_object.update_task_token()
            env.callback_pool_manager.add(token)
        self.timeout.eval(env=env)
        timeout_seconds = float(env.stack.pop())
        heartbeat_seconds: float | None = None
        if self.heartbeat is not None:
            self.heartbeat.eval(env=env)
            heartbeat_seconds = float(env.stack.pop())
        LEDGER.open(
            token,
            timeout_seconds=max(0.0, timeout_seconds - _TIMER_MARGIN),
            heartbeat_seconds=heartbeat_seconds,
            is_running=env.is_running,
        )
        try:
            return original_attempt(self, env)
        finally:
            LEDGER.close(token)

    # moto sets up the heartbeat endpoint only after it invoked the worker, then waits on it alone: a callback
    # landing in between was accepted (200) and lost, and the task failed States.Timeout at HeartbeatSeconds.
    # On AWS the task takes its result whenever it arrives. The task waits on the ledger, which sees them all.
    def eval_wait_for_task_token(
        self: Any, env: Any, timeout_seconds: int, callback_endpoint: Any, heartbeat_endpoint: Any
    ) -> Any:
        token = callback_endpoint.callback_id
        if not LEDGER.issued(token):
            return original_wait(self, env, timeout_seconds, callback_endpoint, heartbeat_endpoint)
        reason, outcome = LEDGER.wait(token, env.is_running)
        if reason is Closed.ANSWERED:
            return outcome
        if reason is Closed.HEARTBEAT_TIMED_OUT:
            return HeartbeatTimedOut()
        return CallbackOutcomeTimedOut(callback_id=token)

    # moto's SendTaskFailure handler drops ``cause``; AWS keeps it for the history and for Catch.
    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    # Once StopExecution stopped the program, the task that was waiting ends and moto recorded its end as an
    # execution failure (FAILED); AWS reports the execution ABORTED.
    def set_error(self: Any, error: Any) -> None:
        if isinstance(self._program_state, ProgramStopped):
            return
        original_set_error(self, error)

    # moto accepts JSONata and ecs:runTask and then runs them wrongly; the simulator refuses them up front, as
    # InvalidDefinition, for every client (in-process mocks and moto_server alike).
    def refusing(original: Callable[..., Any]) -> Callable[..., Any]:
        def method(backend: Any, *args: Any, **kwargs: Any) -> Any:
            definition = kwargs.get("definition", args[1] if len(args) > 1 else None)
            if definition is not None:
                try:
                    check_definition(definition)
                except UnsupportedDefinitionError as exc:
                    raise service_error("InvalidDefinition", str(exc)) from None
            return original(backend, *args, **kwargs)

        return method

    backend = StepFunctionsParserBackend
    # SendTask* answered as AWS answers them (closed tokens TaskTimedOut, heartbeats without HeartbeatSeconds
    # accepted, the service's size limits enforced): see callback_api.
    return [
        Patch(backend, "send_task_success", strict_backend_method("success", backend.send_task_success)),
        Patch(backend, "send_task_failure", strict_backend_method("failure", backend.send_task_failure)),
        Patch(backend, "send_task_heartbeat", strict_backend_method("heartbeat", backend.send_task_heartbeat)),
        Patch(backend, "create_state_machine", refusing(backend.create_state_machine)),
        Patch(backend, "update_state_machine", refusing(backend.update_state_machine)),
        Patch(StepFunctionResponse, "send_task_failure", send_task_failure),
        Patch(Environment, "set_error", set_error),
        Patch(StateTaskServiceCallback, "_evaluate_with_timeout", evaluate_with_timeout),
        Patch(StateTaskServiceCallback, "_eval_wait_for_task_token", eval_wait_for_task_token),
    ]


# -- activities (moto implements no GetActivityTask) ----------------------------------------------------------


def use_activity_store(store: dict[str, Any]) -> Callable[[], None]:
    """Give executions started from now on ``store`` as their activity store; returns the undo.

    moto gives each execution an empty store (``activity_store={}``), so an activity task fails at once with
    ``States.Runtime`` "activity does not exist"; on AWS it waits for a worker.
    """
    from moto.stepfunctions.parser import models

    module: Any = models  # moto does not export the name it builds executions by
    original = module.Execution

    class _Execution(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["activity_store"] = store
            super().__init__(*args, **kwargs)

    module.Execution = _Execution

    def undo() -> None:
        module.Execution = original

    return undo


def interpreter_activity(account_id: str, region: str, activity_arn: str) -> Any:
    """moto's interpreter-side activity for one created through the API (``None`` if there is none)."""
    from moto.stepfunctions.parser.backend.activity import Activity

    created = stepfunctions_backend(account_id, region).activities.get(activity_arn)
    return None if created is None else Activity(arn=activity_arn, name=created.name)


def take_activity_task(activity: Any) -> tuple[str, str] | None:
    """Take the oldest task scheduled on a :func:`interpreter_activity`: ``(token, input)``, or ``None``."""
    try:
        task = activity.get_task()
    except IndexError:
        return None
    return task.task_token, task.task_input


def start_activity_task(account_id: str, region: str, token: str, worker_name: str) -> Any:
    """Tell moto a worker took the activity task ``token``; return its endpoint, or ``None`` if no execution has it.

    moto logs ActivityStarted and arms the task's heartbeat timer only after this; :func:`activity_timer_armed`
    tells when it has.
    """
    from moto.stepfunctions.parser.asl.eval.callback.callback import ActivityCallbackEndpoint

    for execution in stepfunctions_backend(account_id, region)._get_executions():
        env = getattr(execution.exec_worker, "env", None)
        endpoint = env.callback_pool_manager.get(token) if env is not None else None
        if isinstance(endpoint, ActivityCallbackEndpoint):
            endpoint.notify_activity_task_start(worker_name=worker_name or None)
            return endpoint
    return None


def activity_timer_armed(endpoint: Any) -> bool:
    """Whether moto has armed the heartbeat timer of a started activity task."""
    return getattr(endpoint, "_heartbeat_endpoint", None) is not None
