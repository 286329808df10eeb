"""Run a task's function at most once per task token, on powertools' idempotency utility.

SQS and EventBridge deliver at least once, so the same message can reach the function twice. Without this option
a duplicate is harmless to the state machine (its completion is answered "task closed" and the message is
acknowledged) but the function's side effects run twice. With it, the function's result is stored in DynamoDB
under a hash of the task token (the token itself is never stored), and a second delivery of the same token:

* after the first run finished: does not call the function; its stored result is sent again (Step Functions
  answers "closed" if the first completion landed, and delivers it if the first completion was lost);
* while the first run is still going: sends nothing and hands the message back for redelivery, so that a later
  delivery finds the stored result (or runs the function, if the first run died and its record expired);
* when the function raised: runs it again (powertools deletes the record of a failed run).

DynamoDB faults (unreachable, throttled) also hand the message back rather than fail the task. The table is the
one powertools documents: partition key ``id`` (string), TTL on ``expiration``.

powertools' idempotency module, and boto3's DynamoDB client, are imported on the first task, never at import
time, so handlers that do not use this option do not pay for them at cold start.

Example:
    >>> import callback_kit as ck
    >>> from callback_kit.idempotency import Idempotency
    >>> @ck.callback_handler(idempotency=Idempotency(table_name="callback-kit-idempotency"))
    ... def handler(order: dict) -> dict:
    ...     return {"charged": True}  # charged once, however often the message is delivered
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callback_kit.exceptions import RedeliverError, TaskFailed
from callback_kit.outcome import Failure, encode_output
from callback_kit.task.runner import run_awaitable

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer, IdempotencyConfig
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient

#: A day: longer than SQS redeliveries usually span (visibility timeout of 6x the function timeout, times
#: maxReceiveCount). Raise it to the queue's retention period to cover a late DLQ redrive too.
DEFAULT_EXPIRES_AFTER_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class Idempotency:
    """Makes a callback handler run its function once per task token (see the module docstring).

    Args:
        table_name: the DynamoDB table (powertools' layout: partition key ``id``, TTL attribute ``expiration``).
        persistence_store: any powertools persistence layer, instead of ``table_name`` (Redis, a custom one).
        expires_after_seconds: how long a result is kept; a duplicate arriving later runs the function again.
        key_prefix: the key's prefix; default: powertools' ``<module>.<function>``. Set it to keep keys stable
            across a rename of the function.
        boto3_client: a DynamoDB client to use (with ``table_name``), else powertools builds one.
        boto_config: a botocore ``Config`` for the client powertools builds.
        use_local_cache: also keep results in memory (powertools' LRU cache), for duplicates in one sandbox.

    Example:
        >>> from callback_kit.idempotency import Idempotency
        >>> Idempotency(table_name="idempotency", expires_after_seconds=3600).expires_after_seconds
        3600
    """

    table_name: str | None = None
    persistence_store: BasePersistenceLayer | None = None
    expires_after_seconds: int = DEFAULT_EXPIRES_AFTER_SECONDS
    key_prefix: str | None = None
    boto3_client: DynamoDBClient | None = None
    boto_config: Config | None = None
    use_local_cache: bool = False
    _built: list[tuple[BasePersistenceLayer, IdempotencyConfig]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.table_name is None) == (self.persistence_store is None):
            raise ValueError("give exactly one of table_name and persistence_store")
        if self.expires_after_seconds <= 0:
            raise ValueError("expires_after_seconds must be positive")

    def wrap(self, fn: Callable[[Any], Any], token: str, context: Any = None) -> Callable[[Any], Any]:
        """``fn`` made to run at most once for ``token`` (called by the handler, once per record).

        The wrapped function returns the JSON value of ``fn``'s result (the stored one on a duplicate), raises
        what ``fn`` raised, and raises :class:`~callback_kit.exceptions.RedeliverError` when only a later
        delivery can tell what to do.
        """
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyInconsistentStateError,
            IdempotencyItemAlreadyExistsError,
            IdempotencyPersistenceLayerError,
        )

        store, config = self._layer()
        if callable(getattr(context, "get_remaining_time_in_millis", None)):
            # Lets powertools expire an in-progress record when this invocation times out, so that a
            # redelivery after a crash runs the function instead of waiting for expires_after_seconds.
            config.register_lambda_context(context)

        @functools.wraps(fn)
        def run(payload: Any) -> Any:
            def once(task_token: str) -> Any:
                value = fn(payload)
                if inspect.isawaitable(value):  # an async def function: its result is what is stored
                    value = run_awaitable(value)
                encoded = encode_output(value)
                if isinstance(encoded, Failure):
                    # Raised, not returned, so that powertools stores nothing and the task fails as without us.
                    raise TaskFailed(encoded.error, error=encoded.error, cause=encoded.cause)
                return json.loads(encoded.output)

            # powertools names the key after the function: keep the user's, not this closure's.
            once.__module__ = getattr(fn, "__module__", once.__module__)
            once.__qualname__ = getattr(fn, "__qualname__", once.__qualname__)
            guarded = idempotent_function(
                once,
                data_keyword_argument="task_token",
                persistence_store=store,
                config=config,
                key_prefix=self.key_prefix,
            )
            try:
                return guarded(task_token=token)
            except IdempotencyAlreadyInProgressError as exc:
                raise RedeliverError("another invocation is running this task; try again later") from exc
            except (
                IdempotencyPersistenceLayerError,
                IdempotencyInconsistentStateError,
                IdempotencyItemAlreadyExistsError,
            ) as exc:
                raise RedeliverError(f"the idempotency store failed: {type(exc).__name__}") from exc

        return run

    def _layer(self) -> tuple[BasePersistenceLayer, IdempotencyConfig]:
        with self._lock:
            if not self._built:
                from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

                store = self.persistence_store
                if store is None:
                    assert self.table_name is not None
                    store = DynamoDBPersistenceLayer(
                        table_name=self.table_name, boto3_client=self.boto3_client, boto_config=self.boto_config
                    )
                config = IdempotencyConfig(
                    expires_after_seconds=self.expires_after_seconds,
                    use_local_cache=self.use_local_cache,
                    # The key is a hash of the token alone; sha256 rather than powertools' default md5.
                    hash_function="sha256",
                )
                self._built.append((store, config))
            return self._built[0]
