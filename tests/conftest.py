"""Test-wide settings: a fake AWS environment (no test may reach AWS) and quiet logs."""

from __future__ import annotations

import logging
import os

# Set before any client or logger exists: the library builds both lazily, on first use.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.pop("AWS_PROFILE", None)

logging.getLogger("moto").setLevel(logging.CRITICAL)
