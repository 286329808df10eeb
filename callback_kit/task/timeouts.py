"""Clients whose calls end in time: a per-call timeout that fits what is left before a deadline.

A Lambda handler must return before its deadline whatever a Step Functions call does, and a call must not outlive
the handler: Lambda freezes the sandbox at the return and thaws it at the next invoke, when an abandoned call
would resume and land late. So a call made under a deadline is given a timeout that ends before it, the first
attempt included, rather than being left running in a thread.

:func:`bounded` returns the client to make one call on:

* a client callback-kit built (:func:`build_client`: the default completion client, the activity poll client):
  a *variant* built from the same public description (service, region, endpoint, ``Config``) and the same
  botocore session, whose ``connect_timeout`` and ``read_timeout`` add up to no more than the time left
  (connecting gets at most a quarter of it) and which makes one attempt; or the client itself when its own
  timeouts times its attempts already fit. The time left is rounded down to a power of two seconds, so that a
  handful of variants serve every deadline, each keeping its connections warm. A variant signs with the
  session's credentials object, the one the original signs with (botocore caches it on the session), and costs
  ~3 ms, since the session has the service model and endpoint data loaded;
* any other client with a ``with_timeout(seconds)`` method (callback-kit's test fakes have one): what it returns;
* anything else, a botocore client the user passed in particular: the client itself. It is never copied: a copy
  would lose what the user configured on it (event handlers such as a Stubber or a signing hook, ``verify=``, a
  profile's ``ca_bundle``, its retries). Its own timeouts and retries bound its calls instead, and
  :func:`bounded` logs one warning per client when they can outlive the time a call has (see
  docs/reliability.md for the ``Config`` to give it).

Example:
    >>> from callback_kit.testing import FakeStepFunctions
    >>> fake = FakeStepFunctions()
    >>> bounded(fake, None) is fake
    True
    >>> bounded(fake, 1.5).timeout
    1.5
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from callback_kit.logs import get_logger

#: The shortest timeout a call is given; with less time left, the caller should not start the call at all.
MIN_TIMEOUT = 0.01
#: The most of a variant's time that connecting may take (TCP and TLS); reading the response gets the rest. Most
#: calls reuse a kept connection and do not connect at all.
CONNECT_SHARE = 0.25
#: botocore's attempts per call when a client's config names none: its standard (and adaptive) mode makes 3, the
#: legacy mode (the default before botocore 1.36) 5. An unknown mode is taken at the larger count.
DEFAULT_ATTEMPTS = {"standard": 3, "adaptive": 3, "legacy": 5}

#: Held while a client is built from a session: botocore sessions are not safe to build clients from in several
#: threads at once.
_build_lock = threading.Lock()
_session: Any = None


@dataclass(eq=False)
class ClientRecipe:
    """What a client callback-kit built was built from, in public terms: enough to build it again, bounded.

    Attributes:
        session: the botocore session it was built from (credentials are cached on it, so every client built
            from it signs with the same, possibly refreshing, credentials object).
        service: the service name (``stepfunctions``).
        region_name: the region the client resolved.
        endpoint_url: the endpoint the client resolved (``AWS_ENDPOINT_URL`` included).
        config: the botocore ``Config`` it was built with.
    """

    session: Any
    service: str
    region_name: str | None
    endpoint_url: str | None
    config: Any
    #: Bounded variants by grid step; at most 17 (see :func:`grid_floor`).
    variants: dict[float, Any] = field(default_factory=dict, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


#: The clients callback-kit built, each with its recipe. Weak: a client dropped by its owner takes its variants.
_recipes: weakref.WeakKeyDictionary[Any, ClientRecipe] = weakref.WeakKeyDictionary()
_recipes_lock = threading.Lock()
#: The user's clients already warned about (one warning per client).
_warned: weakref.WeakSet[Any] = weakref.WeakSet()


def bounded(client: Any, seconds: float | None) -> Any:
    """The client to make one call on so that it ends within ``seconds`` (``None``: no bound needed)."""
    if seconds is None:
        return client
    seconds = max(MIN_TIMEOUT, seconds)
    with_timeout = getattr(client, "with_timeout", None)
    if callable(with_timeout):
        return with_timeout(seconds)
    recipe = _recipe(client)
    if recipe is not None:
        return _variant(client, recipe, seconds)
    if _is_botocore_client(client):
        _warn_if_unbounded(client, seconds)
    return client


def own(client: Any) -> bool:
    """Whether ``client`` was built by callback-kit (:func:`build_client`), so that its calls can be bounded exactly.

    Example:
        >>> own(object())
        False
    """
    return _recipe(client) is not None


def worst_case_seconds(client: Any) -> float:
    """How long one call on a botocore client can take by its own settings: (connect + read timeout) x attempts.

    A call that opens a connection can wait out both timeouts, one after the other, on every attempt botocore
    makes (its retry pauses come on top).

    Example:
        >>> from botocore.config import Config
        >>> from botocore.session import get_session
        >>> config = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2})
        >>> client = get_session().create_client("stepfunctions", region_name="us-east-1", config=config,
        ...                                      aws_access_key_id="k", aws_secret_access_key="s")
        >>> worst_case_seconds(client)
        6.0
    """
    config = client.meta.config
    return (_seconds(config.connect_timeout) + _seconds(config.read_timeout)) * attempts(config)


def attempts(config: Any) -> int:
    """The attempts botocore makes per call under ``config`` (a client's ``meta.config``), the first included."""
    retries = getattr(config, "retries", None) or {}
    total = retries.get("total_max_attempts")
    if total is None and retries.get("max_attempts") is not None:
        total = int(retries["max_attempts"]) + 1  # botocore's max_attempts counts retries only
    if total is None:
        total = DEFAULT_ATTEMPTS.get(retries.get("mode", "legacy"), max(DEFAULT_ATTEMPTS.values()))
    return max(1, int(total))


def _seconds(timeout: Any) -> float:
    return 60.0 if timeout is None else float(timeout)  # botocore's default for either


def _recipe(client: Any) -> ClientRecipe | None:
    try:
        return _recipes.get(client)
    except TypeError:  # not weakly referenceable: never one of ours
        return None


def _variant(client: Any, recipe: ClientRecipe, seconds: float) -> Any:
    if worst_case_seconds(client) <= seconds:
        return client  # its own timeouts and attempts already end in time
    step = grid_floor(seconds)
    variant = recipe.variants.get(step)
    if variant is not None:
        return variant
    # One variant is built per step, and whoever waited for it uses it: the forty tasks of a batch that all reach a
    # new step at once would otherwise build forty, each with connections of its own.
    with recipe.lock:
        variant = recipe.variants.get(step)
        if variant is None:
            variant = recipe.variants[step] = _build_variant(recipe, step)
    return variant


def _build_variant(recipe: ClientRecipe, seconds: float) -> Any:
    from botocore.config import Config

    # A call that opens a connection can wait out both timeouts, one after the other: together they must fit.
    connect = min(seconds * CONNECT_SHARE, _seconds(recipe.config.connect_timeout))
    config = recipe.config.merge(
        Config(
            connect_timeout=connect,
            read_timeout=seconds - connect,
            retries={"mode": "standard", "total_max_attempts": 1},
        )
    )
    with _build_lock:
        return recipe.session.create_client(
            recipe.service, region_name=recipe.region_name, endpoint_url=recipe.endpoint_url, config=config
        )


def _warn_if_unbounded(client: Any, seconds: float) -> None:
    if client in _warned:
        return
    try:
        worst = worst_case_seconds(client)
    except Exception:  # a client botocore did not build as usual: nothing to say about it
        return
    if worst <= seconds:
        return
    with _recipes_lock:  # once per client, even when a batch's calls all find it at once
        if client in _warned:
            return
        _warned.add(client)
    config = client.meta.config
    get_logger().warning(
        "the Step Functions client passed as client= can take longer than the time this call has: callback-kit "
        "uses it as it is (it never copies a user's client), so a call may outlive the Lambda handler and land "
        "after its message was handed back. Build it with Config(connect_timeout=1, read_timeout=2, "
        "retries={'mode': 'standard', 'total_max_attempts': 1}) (see docs/reliability.md)",
        extra={
            "connect_timeout": config.connect_timeout,
            "read_timeout": config.read_timeout,
            "attempts": attempts(config),
            "worst_case_seconds": round(worst, 3),
            "seconds_left": round(seconds, 3),
        },
    )


#: Whether instances of a type are botocore clients, by type: asked on every call made under a deadline.
_botocore_types: dict[type, bool] = {}


def _is_botocore_client(client: Any) -> bool:
    kind = type(client)
    known = _botocore_types.get(kind)
    if known is None:
        try:
            from botocore.client import BaseClient
        except ImportError:  # pragma: no cover - botocore is a dependency
            return False
        known = _botocore_types[kind] = isinstance(client, BaseClient)
    return known


def grid_floor(seconds: float) -> float:
    """``seconds`` rounded down to a power of two (..., 0.25, 0.5, 1, 2, 4, ...), never below :data:`MIN_TIMEOUT`.

    The grid of variant timeouts: a call is given between half and all of the time left, and 17 variants at most
    cover every time left from 0.01 s to 15 minutes. Each variant keeps connections of its own, so few variants
    means few sockets.

    Example:
        >>> grid_floor(0.37), grid_floor(1.0), grid_floor(2.9), grid_floor(29.0)
        (0.25, 1.0, 2.0, 16.0)
        >>> grid_floor(0.001)
        0.01
    """
    if seconds < 2 * MIN_TIMEOUT:
        return MIN_TIMEOUT
    _, exponent = math.frexp(seconds)  # seconds = m * 2**exponent with 0.5 <= m < 1, exactly
    return math.ldexp(1.0, exponent - 1)


def botocore_session() -> Any:
    """The botocore session callback-kit builds its default Step Functions client (and its variants) from.

    One per process, made on first use: a client built from it reuses the service model and endpoint data the
    session has already loaded. Build clients from it only through :func:`build_client`.

    Example:
        >>> botocore_session() is botocore_session()
        True
    """
    global _session
    if _session is None:
        with _build_lock:
            if _session is None:
                import botocore.session

                _session = botocore.session.get_session()
    return _session


def build_client(service: str, config: Any, *, session: Any = None) -> Any:
    """Build a ``service`` client with ``config`` from ``session`` (default :func:`botocore_session`), and keep its
    recipe, so that :func:`bounded` can build variants of it with shorter timeouts.

    Example:
        >>> from botocore.config import Config
        >>> client = build_client("stepfunctions", Config(region_name="us-east-1"))
        >>> own(client), client.meta.region_name
        (True, 'us-east-1')
    """
    session = session if session is not None else botocore_session()
    with _build_lock:
        client = session.create_client(service, config=config)
    recipe = ClientRecipe(session, service, client.meta.region_name, client.meta.endpoint_url, config)
    with _recipes_lock:
        _recipes[client] = recipe
    return client
