"""Age check: the directly invoked worker (``VerifyAgeOnline``, ``lambda:invoke.waitForTaskToken``) and the
function of the in-store activity worker (``VerifyAgeInStore``).

Under-age is an answer, not an error: ``{"verified": false}`` lets the state machine's ``AgeVerified`` Choice
decide. Data that cannot be right (a birth date in the future) fails the task with ``Age.InvalidBirthDate``.

Run the activity worker with::

    worker = ck.ActivityWorker(activity_arn, check_age)
    worker.run()
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypedDict

from aws_lambda_powertools import Metrics
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

import callback_kit as ck

#: The task counts and timings of docs/observability.md, one EMF document per invocation (namespace and service
#: from POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME, which template.yaml sets).
metrics = Metrics()

#: Nobody is this old: a birth date further back is a data-entry error.
MAX_PLAUSIBLE_AGE = 130


class AgeCheckRequest(BaseModel):
    """What both age-check tasks pass: the customer and the minimum age the order needs."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    customer_id: str = Field(min_length=1)
    birth_date: dt.date
    minimum_age: int = Field(default=18, ge=0, le=MAX_PLAUSIBLE_AGE)


class AgeCheckResult(TypedDict):
    """The task output; ``verified`` drives the state machine's ``AgeVerified`` Choice."""

    customerId: str
    verified: bool
    age: int


def age_on(birth_date: dt.date, today: dt.date) -> int:
    """Whole years between ``birth_date`` and ``today``."""
    had_birthday = (today.month, today.day) >= (birth_date.month, birth_date.day)
    return today.year - birth_date.year - (0 if had_birthday else 1)


def check_age(request: AgeCheckRequest | Mapping[str, Any]) -> AgeCheckResult:
    """Tell whether the customer is at least ``minimumAge`` years old today.

    Takes the validated model (from the Lambda handler) or the raw task input (from an activity worker).
    """
    req = AgeCheckRequest.model_validate(request)
    age = age_on(req.birth_date, dt.datetime.now(dt.timezone.utc).date())
    if age < 0 or age > MAX_PLAUSIBLE_AGE:
        raise ck.TaskFailed(
            f"customer {req.customer_id} has an impossible birth date {req.birth_date.isoformat()}",
            error="Age.InvalidBirthDate",
        )
    return {"customerId": req.customer_id, "verified": age >= req.minimum_age, "age": age}


handler = ck.callback_handler(model=AgeCheckRequest, metrics=metrics)(check_age)
