"""callback_kit.task.timeouts: callback-kit's own clients get bounded copies that end in time; a user's is not."""

from __future__ import annotations

import logging
import random
from typing import Any

import boto3
import pytest
from botocore.config import Config

from callback_kit.task import clients
from callback_kit.task.timeouts import (
    CONNECT_SHARE,
    MIN_TIMEOUT,
    attempts,
    bounded,
    grid_floor,
    own,
    worst_case_seconds,
)

ORIGINAL_KEY = "AKIDORIGINAL0000"


class _Sent(Exception):
    """Raised from a before-send hook: the request was built and signed, and goes no further."""

    def __init__(self, request: Any) -> None:
        super().__init__("sent")
        self.request = request


@pytest.fixture
def user_client() -> Any:
    """A client the user built from their own session, with timeouts longer than most Lambda functions'."""
    session = boto3.session.Session(
        aws_access_key_id=ORIGINAL_KEY, aws_secret_access_key="secret", region_name="eu-west-1"
    )
    return session.client("stepfunctions", config=Config(connect_timeout=5, read_timeout=15))


@pytest.fixture
def own_client(monkeypatch: pytest.MonkeyPatch) -> Any:
    """callback-kit's default client, built fresh for the test (and forgotten after it)."""
    monkeypatch.setattr(clients, "_default_client", None)
    return clients.default_client()


def test_the_grid_rounds_down_and_stays_small() -> None:
    # GIVEN times left anywhere from nothing to a 15-minute Lambda, and values right at the grid's points
    rng = random.Random(13)
    points = [2.0**k for k in range(-5, 10)]
    samples = [rng.uniform(0, 900) for _ in range(20_000)] + [rng.uniform(0, 1.5) for _ in range(5_000)] + points
    grid = set()
    for seconds in samples:
        step = grid_floor(seconds)
        grid.add(step)
        # THEN no timeout is longer than the time left (but for the floor), nor less than half of it
        assert step <= max(seconds, MIN_TIMEOUT)
        if seconds >= 2 * MIN_TIMEOUT:
            assert step > seconds / 2
    for point in points:
        assert grid_floor(point) == point  # a grid point maps to itself, not to the one below
    # AND a handful of copies cover every deadline (one per tenth of a second would be 9,000)
    assert len(grid) <= 17


def _signer_key(client: Any) -> str:
    """The access key a client signs a SendTaskSuccess with (the request is stopped before it is sent)."""
    client.meta.events.register("before-send.states.SendTaskSuccess", _stop)
    with pytest.raises(_Sent) as sent:
        client.send_task_success(taskToken="t", output="{}")
    header = sent.value.request.headers["Authorization"]
    return str(header.decode() if isinstance(header, bytes) else header).split("Credential=")[1].split("/")[0]


def _stop(request: Any, **kwargs: Any) -> None:
    raise _Sent(request)


def test_a_variant_of_an_own_client_ends_in_time_and_keeps_its_endpoint_and_credentials(own_client: Any) -> None:
    # GIVEN callback-kit's default client, whose own timeouts add up to 20 s (one attempt)
    assert own(own_client)
    assert worst_case_seconds(own_client) == 20.0

    # WHEN a call on it must end within 3 s
    variant = bounded(own_client, 3.0)

    # THEN it is made on a variant whose timeouts end in time and that does not retry past them
    assert variant is not own_client
    # (a call that opens a connection can wait out both timeouts in turn, so it is their sum that must fit)
    config = variant.meta.config
    assert config.connect_timeout + config.read_timeout == pytest.approx(grid_floor(3.0))
    assert 0 < config.connect_timeout <= 3.0 * CONNECT_SHARE
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    # AND the rest of the original's config, its endpoint and its region come along
    assert config.max_pool_connections == own_client.meta.config.max_pool_connections
    assert config.user_agent_extra == own_client.meta.config.user_agent_extra
    assert variant.meta.endpoint_url == own_client.meta.endpoint_url
    assert variant.meta.region_name == own_client.meta.region_name
    # AND it signs with the credentials the original signs with (the session's, shared by both)
    assert _signer_key(variant) == _signer_key(own_client)


def test_an_own_client_whose_timeouts_fit_is_used_as_it_is(own_client: Any) -> None:
    assert bounded(own_client, 25.0) is own_client
    assert bounded(own_client, None) is own_client


def test_variants_are_kept_per_grid_step(own_client: Any) -> None:
    # GIVEN calls made at slightly different times left, within one step of the grid and across steps
    first = bounded(own_client, 3.0)
    same_step = bounded(own_client, 2.5)
    other_step = bounded(own_client, 9.0)

    # THEN one variant serves a whole step, so that a handful keep their connections warm
    assert same_step is first
    assert other_step is not first
    assert other_step.meta.config.connect_timeout + other_step.meta.config.read_timeout == pytest.approx(8.0)


@pytest.mark.parametrize("seconds", [0.5, 3.0, 30.0, 900.0])
def test_a_users_client_is_never_copied(user_client: Any, seconds: float) -> None:
    # GIVEN a client the user built, with a handler of their own registered on it
    user_client.meta.events.register("before-send.states.SendTaskSuccess", _stop)

    # WHEN a call on it is bounded, with any time left
    chosen = bounded(user_client, seconds)

    # THEN the call is made on the user's client itself, with everything configured on it
    assert chosen is user_client
    assert not own(user_client)


def test_a_users_client_that_can_outlive_the_time_left_is_reported_once(
    user_client: Any, library_lines: list[logging.LogRecord]
) -> None:
    # GIVEN a user's client whose timeouts times attempts exceed the time calls have, and the log: 20 s x 3 on
    # botocore's standard retry mode, x 5 on the legacy mode older botocore releases default to (1.34 does)
    tries = attempts(user_client.meta.config)
    assert tries in (3, 5)
    assert worst_case_seconds(user_client) == 20.0 * tries
    # WHEN calls on it are bounded with plenty of time, then with too little, twice
    bounded(user_client, 900.0)
    bounded(user_client, 30.0)
    bounded(user_client, 2.0)

    # THEN one warning says so, with its numbers and where the Config to pass is documented
    said = [r for r in library_lines if "client=" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING
    assert said[0].__dict__["worst_case_seconds"] == 20.0 * tries
    assert said[0].__dict__["attempts"] == tries
    assert "docs/reliability.md" in said[0].getMessage()


def test_attempts_follow_botocore_retry_settings() -> None:
    # GIVEN clients configured with each way botocore counts attempts
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    cases = {
        "total": (Config(retries={"mode": "standard", "total_max_attempts": 1}), 1),
        "retries only": (Config(retries={"max_attempts": 4}), 5),
        "standard default": (Config(retries={"mode": "standard"}), 3),
        "legacy default": (Config(retries={"mode": "legacy"}), 5),
    }
    for name, (config, expected) in cases.items():
        client = session.client("stepfunctions", config=config.merge(Config(connect_timeout=1, read_timeout=1)))
        # THEN the worst case counts every attempt botocore makes
        assert worst_case_seconds(client) == 2.0 * expected, name
