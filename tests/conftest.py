"""Test-wide settings: a fake AWS environment (no test may reach AWS) and quiet logs."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

# Set before any client or logger exists: the library builds both lazily, on first use.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.pop("AWS_PROFILE", None)

logging.getLogger("moto").setLevel(logging.CRITICAL)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def library_lines() -> Iterator[list[logging.LogRecord]]:
    """callback-kit's own log records during the test (whatever its log level lets through)."""
    from callback_kit.logs import get_logger

    records = _Records()
    library = logging.getLogger(get_logger().service)
    library.addHandler(records)
    try:
        yield records.records
    finally:
        library.removeHandler(records)
