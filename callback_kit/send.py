"""Answer a token (or a durable callback id) yourself: ``ck.send_success``, ``ck.send_failure``,
``ck.send_heartbeat``.

For code that holds a token outside a decorated handler: a ``hand_off()`` receiver, an approval link's endpoint,
a script. Each call is retried, classified and redacted as the decorator's answers are
(:class:`~callback_kit.task.completion.Completer`).
"""

from __future__ import annotations

from typing import Any

from callback_kit.exceptions import InvalidOutputError
from callback_kit.outcome import Failure, from_exception, truncate_text
from callback_kit.task.answers import Kind, answers_for
from callback_kit.task.completion import Completer, Delivery

__all__ = ["Delivery", "send_failure", "send_heartbeat", "send_success"]


def _completer(client: Any, lambda_client: Any, kind: Kind) -> Completer:
    answers_for(kind)  # an unknown kind is refused before anything is encoded or sent
    return Completer(client, lambda_client=lambda_client)


def send_success(
    token: str, output: Any = None, *, client: Any = None, kind: Kind = "stepfunctions", lambda_client: Any = None
) -> Delivery:
    """Complete a task successfully with ``output`` (any JSON-able value), retrying transient errors.

    With ``kind="durable"``, ``token`` is a Lambda durable callback id, answered with
    SendDurableExecutionCallbackSuccess through ``lambda_client`` (default: callback-kit's own Lambda client).
    The kind is never guessed: a token and a callback id cannot be told apart reliably.

    Example:
        >>> from callback_kit.testing import FakeDurableCallbacks, FakeStepFunctions
        >>> fake = FakeStepFunctions()
        >>> send_success(fake.open_task(), {"approved": True}, client=fake)
        <Delivery.DELIVERED: 'delivered'>
        >>> lam = FakeDurableCallbacks()
        >>> send_success(lam.open_callback(), {"approved": True}, kind="durable", lambda_client=lam)
        <Delivery.DELIVERED: 'delivered'>

    Raises:
        InvalidOutputError: ``output`` is not JSON-serialisable or over the limit (262,144 bytes for Step
            Functions, 1,048,576 for a durable callback, or less if the client's botocore says less); nothing was
            sent.
        CallbackDeliveryError: the service could not be reached, or refused the call.
    """
    completer = _completer(client, lambda_client, kind)
    encoded = completer.encode(output, kind)
    if isinstance(encoded, Failure):
        raise InvalidOutputError(encoded.cause, error=encoded.error)
    return completer.complete(token, encoded, kind=kind)


def send_failure(
    token: str,
    error: str | BaseException = "Error",
    cause: str | None = None,
    *,
    client: Any = None,
    kind: Kind = "stepfunctions",
    lambda_client: Any = None,
) -> Delivery:
    """Fail a task with an error name and cause (or with an exception, mapped as the decorator maps it).

    With ``kind="durable"``, ``token`` is a durable callback id: the error name becomes ``ErrorType`` and the
    cause ``ErrorMessage`` (see :mod:`callback_kit.task.answers`).

    Example:
        >>> from callback_kit.testing import FakeStepFunctions
        >>> fake = FakeStepFunctions()
        >>> send_failure(fake.open_task(), "Order.Invalid", "negative total", client=fake)
        <Delivery.DELIVERED: 'delivered'>

    Raises:
        ValueError: ``error`` starts with the reserved ``States.`` or is over 256 characters.
        CallbackDeliveryError: the service could not be reached, or refused the call.
    """
    completer = _completer(client, lambda_client, kind)
    if isinstance(error, BaseException):
        outcome = from_exception(error)
    else:
        from callback_kit.exceptions import validate_error_name

        outcome = Failure(validate_error_name(error), truncate_text(cause or "", 32_768))
    return completer.complete(token, outcome, kind=kind)


def send_heartbeat(
    token: str, *, client: Any = None, kind: Kind = "stepfunctions", lambda_client: Any = None
) -> Delivery:
    """Send one heartbeat for ``token`` (a durable callback id with ``kind="durable"``), retrying transient errors.

    Example:
        >>> from callback_kit.testing import FakeStepFunctions
        >>> fake = FakeStepFunctions()
        >>> send_heartbeat(fake.open_task(), client=fake)
        <Delivery.DELIVERED: 'delivered'>

    Returns:
        ``Delivery.ALREADY_CLOSED`` if the service says the task is closed (stop working on it).

    Raises:
        CallbackDeliveryError: the service could not be reached, or refused the call.
    """
    return _completer(client, lambda_client, kind).beat(token, kind=kind)
