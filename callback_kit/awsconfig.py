"""AWS configuration faults: missing region or credentials, told apart from the errors that retrying can heal.

A worker backs off and retries a throttled or unreachable Step Functions, and should: those heal. A missing
region, missing or rejected credentials, or an unknown profile never do: retrying them only hides the mistake
behind an endless backoff. :func:`configuration_problem` names such an error and says how to fix it, and
:func:`region_from_arn` gives the region a Step Functions ARN already carries.

Example:
    >>> from botocore.exceptions import NoRegionError
    >>> print(configuration_problem(NoRegionError()))
    no AWS region is configured: set AWS_DEFAULT_REGION (or a profile's region), ...
    >>> configuration_problem(TimeoutError()) is None
    True
    >>> region_from_arn("arn:aws:states:eu-west-1:123456789012:activity:ageCheck")
    'eu-west-1'
"""

from __future__ import annotations

__all__ = ["configuration_problem", "is_configuration_error", "region_from_arn"]

#: Error codes AWS answers when the credentials themselves are wrong (unknown key, bad secret, expired session).
CREDENTIAL_ERROR_CODES = frozenset(
    {"UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "ExpiredTokenException"}
)
_REGION_HINT = (
    "no AWS region is configured: set AWS_DEFAULT_REGION (or a profile's region), or give an ARN that names one"
)
_CREDENTIALS_HINT = (
    "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role provides credentials "
    "(Lambda, ECS, EC2); 'aws sts get-caller-identity' shows what the environment resolves to"
)


def configuration_problem(exc: BaseException) -> str | None:
    """A one-line explanation with a hint if ``exc`` is an AWS configuration fault, else None.

    Configuration faults are botocore's missing region, missing or partial credentials, unknown profile,
    unreadable config file and expired SSO session, and AWS's answers that the credentials
    are unknown, badly signed or expired. A ``CallbackDeliveryError`` raised for one of them is looked through.

    Example:
        >>> from botocore.exceptions import NoCredentialsError
        >>> configuration_problem(NoCredentialsError()).startswith("no AWS credentials were found")
        True
    """
    from botocore import exceptions as bx

    cause = _root(exc)
    if isinstance(cause, bx.NoRegionError):
        return _REGION_HINT
    if isinstance(cause, bx.NoCredentialsError):
        return f"no AWS credentials were found: {_CREDENTIALS_HINT}"
    if isinstance(cause, bx.PartialCredentialsError):
        return f"incomplete AWS credentials ({cause}): {_CREDENTIALS_HINT}"
    if isinstance(cause, bx.ProfileNotFound):
        return f"{cause}: check AWS_PROFILE against ~/.aws/config"
    if isinstance(cause, (bx.ConfigParseError, bx.ConfigNotFound, bx.InvalidConfigError)):
        return f"the AWS configuration cannot be used ({cause}): fix ~/.aws/config or AWS_CONFIG_FILE"
    # Not CredentialRetrievalError or TokenRetrievalError: a container or instance credentials endpoint that
    # hiccups raises those, and that does heal.
    if isinstance(cause, (bx.NoAuthTokenError, bx.UnauthorizedSSOTokenError, bx.SSOTokenLoadError)):
        return f"the AWS SSO session cannot be used ({cause}): run 'aws sso login' for this profile"
    if isinstance(cause, bx.ClientError):
        code = cause.response.get("Error", {}).get("Code")
        if code in CREDENTIAL_ERROR_CODES:
            return f"AWS rejected the credentials ({code}): {_CREDENTIALS_HINT}"
    return None


def is_configuration_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a configuration fault that no retry can heal (see :func:`configuration_problem`).

    Example:
        >>> from botocore.exceptions import PartialCredentialsError
        >>> is_configuration_error(PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"))
        True
    """
    return configuration_problem(exc) is not None


def region_from_arn(arn: str) -> str | None:
    """The region field of an ARN (``arn:PARTITION:SERVICE:REGION:ACCOUNT:...``), or None if it has none.

    Example:
        >>> region_from_arn("arn:aws:states:us-east-1:123456789012:activity:a") is None
        False
        >>> region_from_arn("not-an-arn") is None
        True
    """
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn" or not parts[3]:
        return None
    return parts[3]


def _root(exc: BaseException) -> BaseException:
    """``exc``, or what a framework error wrapping it (``raise ... from exc``) was raised from."""
    from callback_kit.exceptions import CallbackKitError

    seen = 0
    while isinstance(exc, CallbackKitError) and exc.__cause__ is not None and seen < 5:
        exc, seen = exc.__cause__, seen + 1
    return exc
