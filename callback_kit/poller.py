"""The activity worker's polling side: the long-poll client, the backoff after a failed poll, and its verdicts.

Kept apart from :mod:`callback_kit.activity` (which runs tasks) so that each has one role.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from callback_kit.logs import install_token_redaction
from callback_kit.task.timeouts import build_client

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

#: Step Functions holds a GetActivityTask call open this long when there is no work.
POLL_HOLD_SECONDS = 60
#: The poll client's read timeout: above the hold, as AWS asks (at least 65 s).
POLL_READ_TIMEOUT = 70
#: AWS's limit of open GetActivityTask calls per activity ARN.
MAX_OPEN_POLLS = 1000


@dataclass(frozen=True)
class PollBackoff:
    """How long a slot waits after a failed poll: ``min(max_delay, base_delay * 2**n)`` scaled by 0.5 to 1.

    The lower half of the range is never used, so a failing endpoint is never polled in a tight loop.

    Example:
        >>> PollBackoff(rand=lambda: 1.0).delay(3)
        8.0
    """

    base_delay: float = 1.0
    max_delay: float = 30.0
    #: An empty poll that came back sooner than this is followed by a pause up to it (a proxy that answers at once).
    min_poll_seconds: float = 1.0
    rand: Callable[[], float] = random.random

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures + 1`` failed polls in a row."""
        return float(min(self.max_delay, self.base_delay * 2 ** min(failures, 30)) * (0.5 + 0.5 * self.rand()))


def poll_client(max_pool_connections: int = 10) -> SFNClient:
    """A ``stepfunctions`` client for long polls: 70 s read timeout, botocore retries off (the worker backs off)."""
    import botocore.session
    from botocore.config import Config

    # Its responses carry task tokens, which botocore's DEBUG logs would print: mask them before any call.
    install_token_redaction()

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=POLL_READ_TIMEOUT,
        max_pool_connections=max(10, max_pool_connections + 1),
        user_agent_extra="callback-kit",
    )
    # A session of its own, which reads the environment (region, credentials, endpoint) as it stands now. Built
    # through build_client so that a call on it under a deadline (the answers at shutdown) gets a bounded variant.
    return cast("SFNClient", build_client("stepfunctions", config, session=botocore.session.get_session()))
