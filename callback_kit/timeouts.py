"""Clients whose calls end in time: a per-call timeout that fits what is left before a deadline.

A Lambda handler must return before its deadline whatever a Step Functions call does, and a call must not outlive
the handler: Lambda freezes the sandbox at the return and thaws it at the next invoke, when an abandoned call
would resume and land late. So a call made under a deadline is given a timeout that ends before it, the first
attempt included, rather than being left running in a thread.

:func:`bounded` returns the client to make one call on:

* a botocore client: a copy with ``connect_timeout``/``read_timeout`` cut to the time left (cached per tenth of a
  second, sharing the original's credentials, endpoint and region), or the client itself when its own timeouts
  already fit;
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

import threading
from collections import OrderedDict
from typing import Any

#: Timeouts are rounded down to this step, so that a handful of client copies serve every deadline.
STEP = 0.1
#: The shortest timeout a call is given; with less time left, the caller should not start the call at all.
MIN_TIMEOUT = 0.01
_MAX_COPIES = 32

_lock = threading.Lock()
_copies: OrderedDict[tuple[int, float], Any] = OrderedDict()


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
    step = max(MIN_TIMEOUT, int(seconds / STEP) * STEP)
    key = (id(client), round(step, 3))
    with _lock:
        copy = _copies.get(key)
        if copy is not None:
            _copies.move_to_end(key)
            return copy
    copy = _make_copy(client, step)
    if copy is None:
        return client
    with _lock:
        _copies[key] = copy
        while len(_copies) > _MAX_COPIES:
            _copies.popitem(last=False)
    return copy


def _make_copy(client: Any, seconds: float) -> Any:
    import botocore.session
    from botocore.config import Config

    meta = client.meta
    config = meta.config.merge(
        Config(
            connect_timeout=min(seconds, float(meta.config.connect_timeout or seconds)),
            read_timeout=seconds,
            retries={"mode": "standard", "total_max_attempts": 1},
        )
    )
    try:
        signer = client._request_signer
        copy: Any = botocore.session.get_session().create_client(
            meta.service_model.service_name,
            region_name=meta.region_name,
            endpoint_url=meta.endpoint_url,
            config=config,
            aws_access_key_id="copy",
            aws_secret_access_key="copy",  # noqa: S106 - replaced below by the original's credentials object
        )
        # Share the original's credentials object, refreshable ones included, rather than a frozen snapshot.
        copy._request_signer._credentials = signer._credentials
    except Exception:  # a client botocore cannot copy keeps its own timeouts rather than failing the call
        return None
    return copy
