"""The simulator's engine: moto's ``mock_aws`` with the state machine interpreter on, its clients and its hooks.

:class:`SimulatorEngine` owns the lifecycle (fake credentials and region in, the user's environment restored on
exit), the boto3 clients bound to the mock, the two seams into moto's backends (Lambda invokes and the
``send_task_*`` calls), and the observers that hear about callbacks and deliveries. Resources live in
:mod:`callback_kit.simulator.cloud`, delivery to handlers in :mod:`callback_kit.simulator.delivery`.

moto is a test/dev extra only, so it is imported on entry, never at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from callback_kit.simulator import interpreter, moto_adapter
from callback_kit.simulator.records import CallbackCall, Delivery, token_fingerprint

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient
    from typing_extensions import Self

__all__ = ["SimulatorEngine"]

_ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SFN",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_SNS",
    "AWS_ENDPOINT_URL_LAMBDA",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
)
_log = logging.getLogger("callback_kit.simulator")


class SimulatorEngine:
    """moto's Step Functions simulator in-process: lifecycle, clients, hooks and observers.

    The base of :class:`~callback_kit.simulator.LocalStepFunctions`; use that class, not this one.

    Args:
        region: the region for every client and resource.
        account_id: moto's default account; only used to build ARNs and the Lambda context.
        quiet: lower moto's loggers to CRITICAL while the simulator runs.
        context_factory: builds the Lambda context for a call from the function (or queue) name; by default a
            :class:`callback_kit.testing.FakeLambdaContext` with that name and 15 minutes remaining.
    """

    def __init__(
        self,
        region: str = "us-east-1",
        *,
        account_id: str = "123456789012",
        quiet: bool = True,
        context_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.region = region
        self._context_factory = context_factory
        self.account_id = account_id
        self._quiet = quiet
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_levels: dict[str, int] = {}
        self._patched: list[tuple[object, str]] = []
        self._clients: dict[str, Any] = {}
        self._delivery_listeners: list[Callable[[Delivery], None]] = []
        self._callback_listeners: list[Callable[[CallbackCall], None]] = []
        self._interpreter_installed = False

    # -- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        moto_adapter.require()  # one line naming the version and the fix, before anything reaches into moto
        from moto import mock_aws

        fake = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }
        for key in _ENV_KEYS:
            self._saved_env[key] = os.environ.pop(key, None)
        os.environ.update(fake)
        if self._quiet:
            for name in ("moto", "moto.stepfunctions", "moto.stepfunctions.parser"):
                logger = logging.getLogger(name)
                self._saved_levels[name] = logger.level
                logger.setLevel(logging.CRITICAL)
        try:
            self._mock = mock_aws(
                config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
            )
            self._mock.start()
            interpreter.install()
            self._interpreter_installed = True
            self._install_hooks()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        for target, name in reversed(self._patched):
            with contextlib.suppress(AttributeError):
                delattr(target, name)
        self._patched.clear()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._interpreter_installed:
            self._interpreter_installed = False
            interpreter.uninstall()
        self._restore()

    def _restore(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        for name, level in self._saved_levels.items():
            logging.getLogger(name).setLevel(level)
        self._saved_levels.clear()
        self._clients.clear()

    def _install_hooks(self) -> None:
        """Wrap moto's backends (this account and region only) to route Lambda invokes and see callbacks.

        Both are instance attributes set on moto's backend objects for the mock's lifetime and removed on
        exit. The Lambda one replaces ``LambdaSimpleBackend.invoke``, the documented extension point of the
        simple backend. The callback one wraps ``send_task_*`` of the Step Functions backend so that the
        demo can show heartbeats (which never appear in the execution history) from any client.
        """
        lam = moto_adapter.lambda_backend(self.account_id, self.region)
        original_invoke = lam.invoke

        # What the layer above takes (see _on_invoke) it answers itself, as Lambda would.
        def invoke(function_name: str, qualifier: str | None, body: Any, headers: Any, response_headers: Any) -> Any:
            answer = self._on_invoke(function_name, body, headers, response_headers)
            if answer is None:
                return original_invoke(function_name, qualifier, body, headers, response_headers)
            return answer

        self._set_attr(lam, "invoke", invoke)

        sfn_backend = moto_adapter.stepfunctions_backend(self.account_id, self.region)
        observed: tuple[tuple[str, Literal["success", "failure", "heartbeat"]], ...] = (
            ("send_task_success", "success"),
            ("send_task_failure", "failure"),
            ("send_task_heartbeat", "heartbeat"),
        )
        for method, kind in observed:
            self._set_attr(sfn_backend, method, self._observed(getattr(sfn_backend, method), kind))

    def _observed(self, original: Callable[..., Any], kind: Literal["success", "failure", "heartbeat"]) -> Any:
        def wrapper(task_token: str, *args: Any, **kwargs: Any) -> Any:
            extra: dict[str, str | None] = {}
            if kind == "success":
                extra["output"] = kwargs.get("outcome", args[0] if args else None)
            elif kind == "failure":
                extra["error"] = kwargs.get("error", args[0] if args else None)
            try:
                result = original(task_token, *args, **kwargs)
            except Exception as exc:
                code = moto_adapter.error_code(exc)
                self._emit_callback(CallbackCall(kind, token_fingerprint(task_token), rejected=code, **extra))
                raise
            self._emit_callback(CallbackCall(kind, token_fingerprint(task_token), **extra))
            return result

        return wrapper

    def _set_attr(self, target: object, name: str, value: Any) -> None:
        setattr(target, name, value)
        self._patched.append((target, name))

    # -- clients -------------------------------------------------------------------------------------------

    def _client(self, service: str) -> Any:
        if self._mock is None:
            raise RuntimeError("use LocalStepFunctions as a context manager first")
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service, region_name=self.region)  # type: ignore[call-overload]
        return self._clients[service]

    @property
    def sfn(self) -> SFNClient:
        """A Step Functions client bound to the simulator."""
        client: SFNClient = self._client("stepfunctions")
        return client

    @property
    def sqs(self) -> SQSClient:
        """An SQS client bound to the simulator."""
        client: SQSClient = self._client("sqs")
        return client

    @property
    def events(self) -> EventBridgeClient:
        """An EventBridge client bound to the simulator."""
        client: EventBridgeClient = self._client("events")
        return client

    @property
    def lambda_(self) -> LambdaClient:
        """A Lambda client bound to the simulator (functions exist only as routing targets)."""
        client: LambdaClient = self._client("lambda")
        return client

    @property
    def iam(self) -> Any:
        """An IAM client bound to the simulator (typed ``Any``: the project does not depend on IAM stubs)."""
        return self._client("iam")

    # -- observers -----------------------------------------------------------------------------------------

    def on_delivery(self, listener: Callable[[Delivery], None]) -> None:
        """Call ``listener`` after every handler call (from the delivering thread)."""
        self._delivery_listeners.append(listener)

    def on_callback(self, listener: Callable[[CallbackCall], None]) -> None:
        """Call ``listener`` for every SendTaskSuccess/Failure/Heartbeat the simulator receives."""
        self._callback_listeners.append(listener)

    def _emit_callback(self, call: CallbackCall) -> None:
        for listener in list(self._callback_listeners):
            try:
                listener(call)
            except Exception:  # an observer must never break the simulator's request handling
                _log.exception("callback listener failed")

    def _emit_delivery(self, delivery: Delivery) -> None:
        for listener in list(self._delivery_listeners):
            try:
                listener(delivery)
            except Exception:
                _log.exception("delivery listener failed")

    # -- hooks for the layers above ------------------------------------------------------------------------

    def _on_invoke(self, function_name: str, body: Any, headers: Any, response_headers: dict[str, str]) -> bytes | None:
        """Answer a Lambda invocation moto received (the payload); ``None`` lets moto's simple backend answer it."""
        return None
