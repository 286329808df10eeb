"""The library's logger and token fingerprints.

A task token is a bearer credential: whoever holds it can complete the task. callback-kit never logs one; it
logs :func:`fingerprint` (a short hash, stable across processes, enough to correlate log lines) instead.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

_lock = threading.Lock()
_logger: Logger | None = None


def fingerprint(token: str | None) -> str:
    """A short, non-reversible identifier for a task token, safe to log.

    Example:
        >>> fingerprint("AAAAKgAAAAIAAAAAAAAAA")
        'tok-b81e622a5310'
        >>> fingerprint(None)
        'tok-none'
    """
    if not token:
        return "tok-none"
    return "tok-" + hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()[:12]


def get_logger() -> Logger:
    """The powertools Logger callback-kit writes to, created on first use.

    It shares the service name of the function (``POWERTOOLS_SERVICE_NAME``) so that a powertools Logger made
    by the user's own code, with the same service, writes to the same place in the same JSON format.
    """
    global _logger
    if _logger is None:
        with _lock:
            if _logger is None:
                # Imported on first use: the Logger costs ~50 ms of import that a cold start need not pay twice.
                from aws_lambda_powertools import Logger

                _logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "callback-kit"))
    return _logger
