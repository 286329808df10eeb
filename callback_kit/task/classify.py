"""How Step Functions' answers to a callback call are read: closed, not a token, rejected, transient, or fatal.

See :mod:`callback_kit.task.completion` for what each class leads to, and AWS_FACTS for where the codes come from.
"""

from __future__ import annotations

CLOSED_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist"})
#: Step Functions did not issue this token: never "closed", always a poison message (see the module docstring).
INVALID_TOKEN_CODE = "InvalidToken"  # noqa: S105 - an error code, not a secret
REJECTED_CODES = frozenset({"InvalidOutput", "ValidationException"})
#: "The service's rate limit refused this call" (botocore's throttling codes): retried, and paced by the limiter.
THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
    }
)
#: Retried: the throttles, botocore's other transient codes, and KMS throttling, which botocore does not retry.
TRANSIENT_CODES = THROTTLE_CODES | frozenset(
    {
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "KmsThrottlingException",
    }
)
CONFIG_FAULT_CODES = frozenset({"KmsAccessDeniedException", "KmsInvalidStateException"})


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (or of a fake that mimics its ``response``)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same call later may succeed."""
    if error_code(exc) in TRANSIENT_CODES:
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and status >= 500
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, (BotoConnectionError, HTTPClientError, ConnectionError, TimeoutError))


def may_have_landed(exc: BaseException) -> bool:
    """Whether a failed call may nevertheless have been carried out by Step Functions.

    A 5xx answer, a connection dropped mid-request or a read timeout leave it unknown; a throttle (the service
    refused the request) or a connection that was never made (refused, connect timeout) mean it was not.
    """
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and status >= 500
    from botocore.exceptions import ConnectionError as BotoConnectionError

    # EndpointConnectionError, ConnectTimeoutError, a refused connection: the request never left. Anything else
    # (HTTPClientError: connection closed, read timeout) leaves it unknown.
    return not isinstance(exc, (BotoConnectionError, ConnectionRefusedError))
