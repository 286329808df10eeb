"""The options of ``callback_handler`` / ``process_event``: their names, defaults and environment variables.

An option left unset takes its ``CALLBACK_KIT_*`` variable, else its default. The variables are read for each
invocation (three dictionary lookups, see :func:`environment_key`), never frozen at first use: a variable set
after a handler has run (a test's ``monkeypatch.setenv``) applies from the next invocation on.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callback_kit.exceptions import validate_error_name
from callback_kit.outcome import ErrorMap
from callback_kit.sources import SOURCES, Source

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

    from callback_kit.idempotency import Idempotency
    from callback_kit.task.completion import RetryPolicy
    from callback_kit.task.heartbeat import HeartbeatScheduler

ENV_HEARTBEAT_INTERVAL = "CALLBACK_KIT_HEARTBEAT_INTERVAL"
ENV_DEADLINE_MARGIN = "CALLBACK_KIT_DEADLINE_MARGIN"
ENV_MAX_CONCURRENCY = "CALLBACK_KIT_MAX_CONCURRENCY"
DEFAULT_HEARTBEAT_INTERVAL = 30.0
DEFAULT_DEADLINE_MARGIN = 2.0
DEFAULT_MAX_CONCURRENCY = 10


@dataclass(frozen=True)
class HandlerOptions:
    """The options of :func:`~callback_kit.handler.callback_handler`, with environment defaults resolved.

    See that function's docstring for what each option does. Resolved again for each invocation whose
    environment changed (:func:`environment_key`), so that a ``CALLBACK_KIT_*`` variable set at any time takes
    effect for the invocations that follow.
    """

    model: Any = None
    token_path: str | None = None
    payload_path: str | None = None
    heartbeat_interval: float | None = None
    source: Source | None = None
    client: Any = None
    lambda_client: Any = None
    error_map: ErrorMap | None = None
    deadline_margin: float = DEFAULT_DEADLINE_MARGIN
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    retry: RetryPolicy | None = None
    scheduler: HeartbeatScheduler | None = None
    idempotency: Idempotency | None = None
    metrics: Metrics | None = None

    @classmethod
    def resolve(
        cls,
        *,
        heartbeat_interval: float | None = None,
        deadline_margin: float | None = None,
        max_concurrency: int | None = None,
        source: str | None = None,
        error_map: ErrorMap | None = None,
        environ: Mapping[str, str] | None = None,
        **rest: Any,
    ) -> HandlerOptions:
        """Fill unset options from the environment, then from the defaults; reject bad values early.

        Example:
            >>> HandlerOptions.resolve(heartbeat_interval=20, environ={}).heartbeat_interval
            20.0
            >>> HandlerOptions.resolve(environ={ENV_HEARTBEAT_INTERVAL: "0"}).heartbeat_interval is None  # off
            True
        """
        # Each error names the option, the value and where it came from (the argument or its variable).
        env = os.environ if environ is None else environ
        interval = _env_float(
            env, ENV_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_INTERVAL, heartbeat_interval, "heartbeat_interval"
        )
        margin = _env_float(env, ENV_DEADLINE_MARGIN, DEFAULT_DEADLINE_MARGIN, deadline_margin, "deadline_margin")
        concurrency = _env_float(
            env, ENV_MAX_CONCURRENCY, DEFAULT_MAX_CONCURRENCY, max_concurrency, "max_concurrency", minimum=1, whole=True
        )
        if source is not None and source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        for name in (error_map or {}).values():
            validate_error_name(name)
        return cls(
            heartbeat_interval=interval or None,
            deadline_margin=margin,
            max_concurrency=int(concurrency),
            source=source,
            error_map=error_map,
            **rest,
        )


#: The options :func:`callback_handler` and :func:`process_event` take.
OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(HandlerOptions))

#: The options :func:`~callback_kit.handler.callback_handler` and :func:`~callback_kit.handler.process_event` take.
OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(HandlerOptions))
#: Each environment variable and the option it stands in for.
_ENV_OPTIONS = (
    (ENV_HEARTBEAT_INTERVAL, "heartbeat_interval"),
    (ENV_DEADLINE_MARGIN, "deadline_margin"),
    (ENV_MAX_CONCURRENCY, "max_concurrency"),
)


def environment_key(given: Mapping[str, Any]) -> tuple[str | None, ...]:
    """The values of the variables that the options ``given`` leave to the environment, as now set.

    Two invocations with the same key resolve to the same options, so a handler re-resolves only when it changed.

    Example:
        >>> import os
        >>> environment_key({"heartbeat_interval": 5, "deadline_margin": 1, "max_concurrency": 4})
        ()
    """
    return tuple(os.environ.get(name) for name, option in _ENV_OPTIONS if given.get(option) is None)


def _env_float(
    environ: Mapping[str, str],
    name: str,
    default: float,
    given: float | None,
    option: str,
    *,
    minimum: float = 0.0,
    whole: bool = False,
) -> float:
    """``given``, else ``$name``, else ``default``; refuses a bad value naming the option, value and source."""
    raw_value: float | str
    if given is not None:
        source, raw_value = option, given
    else:
        raw = environ.get(name)
        if raw is None or raw.strip() == "":
            return float(default)
        source, raw_value = f"{option} (from ${name})", raw
    try:
        value = float(raw_value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a number, not {raw_value!r}") from None
    if not math.isfinite(value) or value < minimum or (whole and not value.is_integer()):
        kind = "a whole number" if whole else "a number of seconds"
        raise ValueError(f"{source} must be {kind} >= {minimum:g}, not {raw_value!r}")
    return value
