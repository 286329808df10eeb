"""A direct-invoke callback worker as users write it by hand today: the baseline of the comparison.

boto3 is imported and the client built at import time, as the AWS samples and most user code do, so that warm
invocations reuse it.
"""

from __future__ import annotations

import json
from typing import Any

import boto3

sfn = boto3.client("stepfunctions")


def handler(event: dict[str, Any], context: Any) -> None:
    """Do the work, then send SendTaskSuccess with its result."""
    token = event["TaskToken"]
    result = {"ok": True, "n": event.get("n")}
    sfn.send_task_success(taskToken=token, output=json.dumps(result))
