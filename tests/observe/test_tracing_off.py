"""Without a configured tracer provider, callback-kit imports no OpenTelemetry and makes no span."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import callback_kit as ck
from callback_kit.observe import tracer
from callback_kit.testing import FakeStepFunctions, direct_event

SCRIPT = textwrap.dedent(
    """
    import sys
    import callback_kit as ck
    from callback_kit.testing import FakeStepFunctions, direct_event
    sfn = FakeStepFunctions()
    handler = ck.callback_handler(client=sfn, heartbeat_interval=0)(lambda p: {"ok": True})
    handler(direct_event(sfn.open_task(), {}))
    print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    """
)


def test_a_task_run_imports_no_opentelemetry() -> None:
    # GIVEN a fresh interpreter that never imported OpenTelemetry (though it is installed)
    # WHEN a handler answers a task there
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    # THEN no OpenTelemetry module was imported
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_api_default_provider_means_tracing_is_off() -> None:
    # GIVEN OpenTelemetry imported but no provider set (the API's proxy provider is in place)
    import opentelemetry.trace  # noqa: F401

    sfn = FakeStepFunctions()
    token = sfn.open_task()
    # WHEN a task runs
    ck.callback_handler(client=sfn, heartbeat_interval=0)(lambda p: {})(direct_event(token, {}))
    # THEN there is no tracer, and the task is answered as ever
    assert tracer() is None
    assert sfn.outcome(token) == ("success", {})
