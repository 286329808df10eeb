"""``ck.prewarm()``: pay the first task's one-off costs at module level, where INIT is paid ahead of traffic.

callback-kit imports botocore, powertools' Logger and pydantic-core and builds its Step Functions client only when
the first task needs them, so that importing a handler module is cheap. With provisioned concurrency or
SnapStart, INIT runs before any request arrives, and that work is better done there: call :func:`prewarm` at
module level. With on-demand functions it only moves the cost (Lambda bills the INIT phase too since August
2025), so there it is a matter of taste.
"""

from __future__ import annotations


def prewarm(*, client: bool = True) -> None:
    """Import and build now what the first task would: the default client, the logger, the encoder, the scheduler.

    No network call is made and no thread is started (threads and SnapStart snapshots do not mix well): the
    heartbeat thread and the worker threads still start with the first task, which costs well under a
    millisecond.

    Args:
        client: build the default ``stepfunctions`` client too (False when every handler is given its own
            ``client=``; build and pass that one at module level instead).

    Example:
        >>> import callback_kit as ck
        >>> ck.prewarm(client=False)  # at module level, beside the decorated handler
    """
    # Each import below is one the first task would otherwise make (see the modules' own lazy imports).
    import callback_kit.task.workers  # noqa: F401 - the handler's shared pool (its threads start with the first task)
    from callback_kit.logs import fingerprint, get_logger
    from callback_kit.outcome import encode_output
    from callback_kit.task.classify import is_transient
    from callback_kit.task.clients import default_client
    from callback_kit.task.heartbeat import get_scheduler

    get_logger()
    encode_output({"prewarm": True})  # imports pydantic-core's encoder
    fingerprint("prewarm")
    is_transient(ValueError())  # imports botocore's exception classes
    get_scheduler()
    if client:
        default_client()
