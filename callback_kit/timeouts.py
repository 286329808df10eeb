"""Clients whose calls end in time: a per-call timeout that fits what is left before a deadline.

A Lambda handler must return before its deadline whatever a Step Functions call does, and a call must not outlive
the handler: Lambda freezes the sandbox at the return and thaws it at the next invoke, when an abandoned call
would resume and land late. So a call made under a deadline is given a timeout that ends before it, the first
attempt included, rather than being left running in a thread.

:func:`bounded` returns the client to make one call on:

* a botocore client: a copy whose ``connect_timeout`` and ``read_timeout`` add up to no more than the time left
  (connecting gets at most a quarter of it), or the client itself when its own timeouts already fit. The time left
  is rounded down to a power of two seconds, so that a handful of copies serve every deadline, each keeping its
  connections warm; a copy shares the original's credentials, endpoint and region, and is built from one botocore
  session per process (:func:`botocore_session`) whose loaded service model and endpoint data every copy reuses (a
  copy costs ~3 ms, against ~60-100 ms from a fresh session);
* any other client with a ``with_timeout(seconds)`` method (callback-kit's test fakes have one): what it returns;
* anything else: the client itself (it cannot be bounded; inject a botocore client or a fake to get bounds).

Example:
    >>> from callback_kit.testing import FakeStepFunctions
    >>> fake = FakeStepFunctions()
    >>> bounded(fake, None) is fake
    True
    >>> bounded(fake, 1.5).timeout
    1.5
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: The shortest timeout a call is given; with less time left, the caller should not start the call at all.
MIN_TIMEOUT = 0.01
#: The most of a copy's time that connecting may take (TCP and TLS); reading the response gets the rest. Most
#: calls reuse a kept connection and do not connect at all.
CONNECT_SHARE = 0.25
#: Copies kept (of all clients); the least recently used beyond this is closed, with its connections.
_MAX_COPIES = 24

_lock = threading.Lock()
#: (id of the original, timeout) -> (the original, its copy). The original is kept, and compared, because an id is
#: only unique among live objects: a client built after another was collected may get its id.
_copies: OrderedDict[tuple[int, float], tuple[Any, Any]] = OrderedDict()
#: Held while a bounded copy is made, so that each is made once.
_copy_lock = threading.Lock()
#: Held while a client is built from the shared session: botocore sessions are not safe to build clients from in
#: several threads at once.
_build_lock = threading.Lock()
_session: Any = None


def bounded(client: Any, seconds: float | None) -> Any:
    """The client to make one call on so that it ends within ``seconds`` (``None``: no bound needed)."""
    if seconds is None:
        return client
    seconds = max(MIN_TIMEOUT, seconds)
    with_timeout = getattr(client, "with_timeout", None)
    if callable(with_timeout):
        return with_timeout(seconds)
    if _is_botocore_client(client):
        return _botocore_copy(client, seconds)
    return client


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


def _botocore_copy(client: Any, seconds: float) -> Any:
    config = client.meta.config
    own = float(config.connect_timeout or 60) + float(config.read_timeout or 60)
    if own <= seconds:
        return client  # its own timeouts already end in time
    step = grid_floor(seconds)
    key = (id(client), step)
    cached = _cached_copy(key, client)
    if cached is not None:
        return cached
    # One copy is made at a time, and whoever waited for it uses it: the forty tasks of a batch that all reach a
    # new step at once would otherwise make forty copies, each with connections of its own.
    with _copy_lock:
        cached = _cached_copy(key, client)
        if cached is not None:
            return cached
        copy = _make_copy(client, step)
        if copy is None:
            return client
        evicted = []
        with _lock:
            _copies[key] = (client, copy)
            while len(_copies) > _MAX_COPIES:
                evicted.append(_copies.popitem(last=False)[1][1])
    for old in evicted:
        # Its kept sockets go now, not whenever the collector gets to the client's reference cycles. A call still
        # in flight on it finishes: closing drops idle connections, and the busy one is closed when handed back.
        close = getattr(old, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
    return copy


def _cached_copy(key: tuple[int, float], client: Any) -> Any:
    with _lock:
        entry = _copies.get(key)
        if entry is None or entry[0] is not client:
            return None
        _copies.move_to_end(key)
        return entry[1]


def grid_floor(seconds: float) -> float:
    """``seconds`` rounded down to a power of two (..., 0.25, 0.5, 1, 2, 4, ...), never below :data:`MIN_TIMEOUT`.

    The grid of copy timeouts: a call is given between half and all of the time left, and 17 copies at most cover
    every time left from 0.01 s to 15 minutes. Each copy keeps connections of its own, so few copies means few
    sockets.

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
    """The botocore session callback-kit builds its default Step Functions client and every bounded copy from.

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


def build_client(build: Callable[[Any], T]) -> T:
    """``build(session)`` with :func:`botocore_session`, one build at a time.

    Example:
        >>> build_client(lambda session: session is botocore_session())
        True
    """
    session = botocore_session()
    with _build_lock:
        return build(session)


def _make_copy(client: Any, seconds: float) -> Any:
    from botocore.config import Config

    meta = client.meta
    # A call that opens a connection can wait out both timeouts, one after the other: together they must fit.
    connect = min(seconds * CONNECT_SHARE, float(meta.config.connect_timeout or seconds))
    config = meta.config.merge(
        Config(
            connect_timeout=connect,
            read_timeout=seconds - connect,
            retries={"mode": "standard", "total_max_attempts": 1},
        )
    )
    try:
        signer = client._request_signer
        copy: Any = build_client(
            lambda session: session.create_client(
                meta.service_model.service_name,
                region_name=meta.region_name,
                endpoint_url=meta.endpoint_url,
                config=config,
                aws_access_key_id="copy",
                aws_secret_access_key="copy",  # noqa: S106 - replaced below by the original's credentials object
            )
        )
        # Share the original's credentials object, refreshable ones included, rather than a frozen snapshot.
        copy._request_signer._credentials = signer._credentials
    except Exception:  # a client botocore cannot copy keeps its own timeouts rather than failing the call
        return None
    return copy
