"""callback-kit's own clients: the process-wide Step Functions and Lambda clients, built on first use, and their
botocore configuration.

A client passed as ``client=`` or ``lambda_client=`` is used as it is; these are for everyone who passes none.
Both are built from one botocore session (:func:`callback_kit.task.timeouts.build_client`), with short timeouts,
botocore's own retries off (:class:`~callback_kit.task.completion.Completer` retries, and the two would multiply),
tokens masked in botocore's DEBUG logs, and enough connections kept for the calls the process runs at once.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from callback_kit.exceptions import CallbackDeliveryError
from callback_kit.logs import get_logger, install_token_redaction
from callback_kit.task.answers import DURABLE
from callback_kit.task.heartbeat_senders import MAX_SENDERS
from callback_kit.task.timeouts import build_client

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

__all__ = [
    "MIN_POOL_CONNECTIONS",
    "POOL_HEADROOM",
    "client_config",
    "default_client",
    "default_lambda_client",
    "expect_concurrent_calls",
]

_client_lock = threading.Lock()
_default_client: SFNClient | None = None
_default_lambda_client: Any = None

#: The fewest completion calls at once the default client keeps connections for (botocore keeps 10 in all).
MIN_POOL_CONNECTIONS = 32
#: Connections kept beside those for completions: one per heartbeat sender thread the scheduler may start. (The
#: deadline guard's failures replace completions that were never sent, so they need none of their own.)
POOL_HEADROOM = MAX_SENDERS
_expected_calls = 0
_pool_warned = False


def expect_concurrent_calls(count: int) -> None:
    """Say that this process may make ``count`` completion calls at once, so that the default client keeps enough
    connections open for them (and :data:`POOL_HEADROOM` more, for heartbeats).

    A call that finds every kept connection busy opens one more, uses it once and closes it, and urllib3 logs
    ``Connection pool is full, discarding connection`` at WARNING: with ``max_concurrency=100`` and botocore's
    default of 10, ninety calls in every wave paid a new TLS handshake. The decorated handler and the activity
    worker call this with their concurrency; it counts only until the default client is built (on the first task),
    after which a count larger than the client's whole pool is logged once, at WARNING.

    Example:
        >>> expect_concurrent_calls(10)
    """
    global _expected_calls, _pool_warned
    if count <= _expected_calls:
        return
    with _client_lock:
        _expected_calls = max(_expected_calls, count)
        client = _default_client
    if client is not None and not _pool_warned:
        kept = getattr(client.meta.config, "max_pool_connections", None)
        if kept is not None and count > kept:  # the completions alone would open and discard connections
            _pool_warned = True
            get_logger().warning(
                "the default Step Functions client keeps fewer connections than calls may run at once; pass "
                "client= built with a larger max_pool_connections",
                extra={"max_pool_connections": kept, "concurrent_calls": count},
            )


def client_config() -> Any:
    """The botocore ``Config`` of callback-kit's default clients (Step Functions and Lambda alike).

    Short timeouts, botocore's own retries off because :class:`~callback_kit.task.completion.Completer` retries
    (the two would multiply), and enough connections kept open for the calls the process runs at once (see
    :func:`expect_concurrent_calls`).
    """
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=15,
        max_pool_connections=max(MIN_POOL_CONNECTIONS, _expected_calls) + POOL_HEADROOM,
        user_agent_extra="callback-kit",
    )


def default_client() -> SFNClient:
    """The process-wide ``stepfunctions`` client, built on first use (never at import).

    It honours the usual AWS environment (region, credentials, ``AWS_ENDPOINT_URL``) and is configured by
    :func:`client_config`.
    """
    global _default_client
    if _default_client is None:
        with _client_lock:
            if _default_client is None:
                config = client_config()
                # botocore's DEBUG logs print request bodies, task tokens included: mask them before any is made.
                install_token_redaction()
                # Built from the shared session, with its recipe kept (callback_kit.task.timeouts), so that its bounded
                # variants reuse the service model and endpoint data this client loaded. botocore's own session,
                # not boto3's: callback-kit needs nothing boto3 adds, and importing boto3 (s3transfer with it) is
                # 10-25 ms of a cold start.
                _default_client = build_client("stepfunctions", config)
    return _default_client


def default_lambda_client() -> Any:
    """The process-wide ``lambda`` client durable callbacks are answered with, built on first use (never at import).

    Built as the Step Functions default is (:func:`default_client`): from the same botocore
    session, with short timeouts and bounded variants, botocore's retries off (the completer retries), and
    callback ids masked in botocore's DEBUG logs.

    Raises:
        CallbackDeliveryError: the installed botocore predates the durable callback API (1.42.1).
    """
    global _default_lambda_client
    if _default_lambda_client is None:
        with _client_lock:
            if _default_lambda_client is None:
                install_token_redaction()
                client = build_client("lambda", client_config())
                if not hasattr(client, DURABLE.method(DURABLE.success_api)):
                    # botocore older than 1.42.1 (an old Lambda runtime's) has no durable callback API: say so,
                    # rather than fail with an AttributeError on the first answer. The message goes back.
                    import botocore

                    raise CallbackDeliveryError(
                        f"answering Lambda durable callbacks needs botocore >= 1.42.1; this is {botocore.__version__}",
                        api=DURABLE.success_api,
                        code="BotocoreTooOld",
                    )
                _default_lambda_client = client
    return _default_lambda_client
