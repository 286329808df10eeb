"""Configuration faults (no region, no credentials) are told apart from errors that retrying heals."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    UnauthorizedSSOTokenError,
)

from callback_kit.activity import ActivityWorker, PollBackoff
from callback_kit.awsconfig import configuration_problem, is_configuration_error, region_from_arn
from callback_kit.exceptions import CallbackDeliveryError
from callback_kit.testing import FakeStepFunctions

ARN = "arn:aws:states:eu-west-1:123456789012:activity:ageCheck"


def client_error(code: str, status: int = 400) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetActivityTask")


@pytest.mark.parametrize(
    ("exc", "hint"),
    [
        (NoRegionError(), "AWS_DEFAULT_REGION"),
        (NoCredentialsError(), "AWS_PROFILE"),
        (PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"), "AWS_SECRET_ACCESS_KEY"),
        (ProfileNotFound(profile="nope"), "AWS_PROFILE"),
        (UnauthorizedSSOTokenError(), "aws sso login"),
        (client_error("UnrecognizedClientException"), "UnrecognizedClientException"),
        (client_error("InvalidSignatureException"), "InvalidSignatureException"),
    ],
)
def test_configuration_faults_are_named_with_a_hint(exc: Exception, hint: str) -> None:
    # GIVEN a fault no retry can heal / WHEN it is classified
    problem = configuration_problem(exc)
    # THEN it is a configuration error, and the message says what to set
    assert problem is not None
    assert hint in problem
    assert is_configuration_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        client_error("ThrottlingException"),
        client_error("InternalFailure", 500),
        client_error("AccessDeniedException"),
        EndpointConnectionError(endpoint_url="https://states.eu-west-1.amazonaws.com"),
        # A container or instance credentials endpoint that hiccups: it heals, so it is not a configuration fault.
        CredentialRetrievalError(provider="container-role", error_msg="timeout"),
        TimeoutError(),
        ValueError("x"),
    ],
)
def test_errors_that_may_heal_are_not_configuration_faults(exc: Exception) -> None:
    # GIVEN / WHEN / THEN
    assert configuration_problem(exc) is None


def test_a_delivery_error_raised_from_a_configuration_fault_is_looked_through() -> None:
    # GIVEN a CallbackDeliveryError raised from NoCredentialsError, as the completer raises it
    try:
        try:
            raise NoCredentialsError()
        except NoCredentialsError as cause:
            raise CallbackDeliveryError("Unable to locate credentials", api="SendTaskSuccess") from cause
    except CallbackDeliveryError as exc:
        wrapped = exc
    # WHEN / THEN it is classified by its cause
    assert (configuration_problem(wrapped) or "").startswith("no AWS credentials were found")


@pytest.mark.parametrize(
    ("arn", "region"),
    [
        (ARN, "eu-west-1"),
        ("arn:aws-cn:states:cn-north-1:123456789012:activity:a", "cn-north-1"),
        ("arn:aws:iam::123456789012:role/x", None),
        ("arn:aws:states", None),
        ("eu-west-1", None),
    ],
)
def test_region_from_arn(arn: str, region: str | None) -> None:
    # GIVEN / WHEN / THEN
    assert region_from_arn(arn) == region


def test_the_activity_worker_stops_on_a_configuration_fault_instead_of_retrying_forever() -> None:
    # GIVEN Step Functions that rejects the worker's credentials on every poll
    fake = FakeStepFunctions(activity_poll_seconds=0.01)
    fake.inject("GetActivityTask", "UnrecognizedClientException", times=1000)
    pauses: list[float] = []
    worker = ActivityWorker(
        ARN, lambda p: p, client=fake, heartbeat_interval=0, sleep=pauses.append, backoff=PollBackoff(rand=lambda: 0)
    )

    # WHEN it runs
    with pytest.raises(ClientError) as raised:
        worker.run()

    # THEN it stopped after the first failed poll, without backing off, and run() raised the fault
    assert raised.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert worker.stats.poll_errors == 1
    assert pauses == []
    assert worker.configuration_error is raised.value


def test_the_activity_worker_still_backs_off_on_throttling() -> None:
    # GIVEN polls that are throttled twice, and a worker told to stop at its second pause
    fake = FakeStepFunctions(activity_poll_seconds=0.01)
    fake.inject("GetActivityTask", "ThrottlingException", times=2)
    pauses: list[float] = []
    worker: ActivityWorker

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            worker.stop()

    worker = ActivityWorker(ARN, lambda p: p, client=fake, heartbeat_interval=0, sleep=pause)

    # WHEN it runs
    stats = worker.run()

    # THEN both errors were backed off from, and nothing was raised
    assert stats.poll_errors == 2
    assert len(pauses) == 2
    assert worker.configuration_error is None
