"""callback_kit.timeouts: bounded copies of botocore clients end in time, are few, and are cheap to make."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from callback_kit import completion, timeouts
from callback_kit.timeouts import CONNECT_SHARE, MIN_TIMEOUT, botocore_session, bounded, grid_floor

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
def fresh_copies() -> Iterator[None]:
    """Start with no cached copies, and drop the test's copies after it."""
    timeouts._copies.clear()
    yield
    timeouts._copies.clear()


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


def test_a_copy_ends_in_time_and_keeps_the_endpoint_and_credentials(user_client: Any, fresh_copies: None) -> None:
    # WHEN a call must end within 3 s and the client's own timeouts add up to 20 s
    copy = bounded(user_client, 3.0)

    # THEN it is made on a copy whose timeouts end in time and that does not retry past them
    assert copy is not user_client
    # (a call that opens a connection can wait out both timeouts in turn, so it is their sum that must fit)
    config = copy.meta.config
    assert config.connect_timeout + config.read_timeout == pytest.approx(grid_floor(3.0))
    assert grid_floor(3.0) <= 3.0
    assert 0 < config.connect_timeout <= 3.0 * CONNECT_SHARE
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert copy.meta.endpoint_url == user_client.meta.endpoint_url
    assert copy.meta.region_name == "eu-west-1"

    # AND the copy signs with the original's credentials object (a refreshable one keeps refreshing)
    copy.meta.events.register("before-send.states.SendTaskSuccess", _stop)
    with pytest.raises(_Sent) as sent:
        copy.send_task_success(taskToken="t", output="{}")
    assert f"Credential={ORIGINAL_KEY}/" in sent.value.request.headers["Authorization"].decode()


def test_a_client_whose_timeouts_fit_is_used_as_it_is(user_client: Any, fresh_copies: None) -> None:
    assert bounded(user_client, 25.0) is user_client
    assert bounded(user_client, None) is user_client


def test_copies_are_cached_per_grid_step_and_share_what_is_loaded(user_client: Any, fresh_copies: None) -> None:
    # GIVEN calls made at slightly different times left, within one step of the grid and across steps
    first = bounded(user_client, 3.0)
    same_step = bounded(user_client, 2.5)
    other_step = bounded(user_client, 9.0)

    # THEN one copy serves a whole step, and every copy comes from the one session, so that a new copy reuses its
    # service model and endpoint data (a copy from a fresh session costs 20-30x more)
    assert same_step is first
    assert other_step is not first
    loader = botocore_session().get_component("data_loader")
    assert first._loader is loader
    assert other_step._loader is loader


def test_the_default_clients_copies_reuse_its_loaded_models(
    monkeypatch: pytest.MonkeyPatch, fresh_copies: None
) -> None:
    # GIVEN the default client, built fresh in this test
    environment = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(completion, "_default_client", None)
    client: Any = completion.default_client()

    # WHEN a call on it is bounded
    copy = bounded(client, 2.0)

    # THEN the copy was built from the session the client was: nothing loaded twice
    assert copy is not client
    assert copy._loader is client._loader


def _stop(request: Any, **kwargs: Any) -> None:
    raise _Sent(request)


def test_a_copy_is_never_served_for_another_client_that_reuses_an_id(user_client: Any, fresh_copies: None) -> None:
    # GIVEN a cached copy made for a client that has since been collected, under the id a new client now has
    # (ids are unique only among live objects; this plants what that reuse leaves behind)
    stale_original = boto3.session.Session(
        aws_access_key_id="AKIDSTALE", aws_secret_access_key="s", region_name="us-west-2"
    ).client("stepfunctions")
    stale_copy = bounded(stale_original, 3.0)
    timeouts._copies[(id(user_client), grid_floor(3.0))] = timeouts._copies.pop((id(stale_original), grid_floor(3.0)))

    # WHEN the new client's call is bounded
    copy = bounded(user_client, 3.0)

    # THEN it gets a copy of itself, with its own region and credentials, never the stale one
    assert copy is not stale_copy
    assert copy.meta.region_name == "eu-west-1"
    assert copy._request_signer._credentials is user_client._request_signer._credentials


def test_a_copy_pushed_out_of_the_cache_is_closed(monkeypatch: pytest.MonkeyPatch, fresh_copies: None) -> None:
    # GIVEN a cache of two copies, and three clients whose calls each need one
    monkeypatch.setattr(timeouts, "_MAX_COPIES", 2)
    clients = [
        boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name=region).client(
            "stepfunctions"
        )
        for region in ("us-east-1", "us-west-2", "eu-west-1")
    ]
    closed: list[str] = []
    first = bounded(clients[0], 3.0)
    first.close = lambda: closed.append("first")

    # WHEN the other two clients' copies are made
    bounded(clients[1], 3.0)
    bounded(clients[2], 3.0)

    # THEN the least recently used copy was closed (its kept sockets go at once) and dropped
    assert closed == ["first"]
    assert all(entry[1] is not first for entry in timeouts._copies.values())
