"""Run one handler of a ``sam build`` output on one event, as Lambda would, and print what happened as JSON.

Not a test module: ``test_built_functions.py`` runs it in a subprocess whose ``PYTHONPATH`` is the function's
build directory and the layer's ``python/`` directory (Lambda's ``/var/task`` and ``/opt/python``), under
``python -S`` so nothing else (no site-packages, no checkout) can satisfy an import.

Usage: python -S run_built.py MODULE.ATTR EVENT_FILE [--activity ACTIVITY_ARN]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any


class LambdaContext:
    """The few attributes of Lambda's context object that a handler may read."""

    function_name = "built-function"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:built-function"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/built-function"
    log_stream_name = "2026/11/23/[$LATEST]0000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("handler", help="MODULE.ATTR, as in the template's Handler property")
    parser.add_argument("event", help="path of the event JSON")
    parser.add_argument("--activity", help="run the handler as this activity's worker on a GetActivityTask response")
    args = parser.parse_args(argv)

    module_name, _, attr = args.handler.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attr)
    with open(args.event, encoding="utf-8") as f:
        event = json.load(f)

    import callback_kit as ck

    result: Any
    if args.activity:
        from callback_kit.activity import ActivityWorker

        result = ActivityWorker(args.activity, handler).run_one(event).status.value
    else:
        result = handler(event, LambdaContext())
    report = {
        "result": result,
        "handler_file": importlib.import_module(module_name).__file__,
        "callback_kit_file": ck.__file__,
        "boto3_file": getattr(sys.modules.get("boto3"), "__file__", None),
        "botocore_file": getattr(sys.modules.get("botocore"), "__file__", None),
        "python": sys.version.split()[0],
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
