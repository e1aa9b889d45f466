"""Router.choose and ChannelHealth without a gateway: tiers, weights, exclusion, rests, disabling, busy
channels, and the 503 that says why no channel can take a request."""

from __future__ import annotations

import random
import time

import pytest

from llmrelay.config import ChannelConfig, RoutingConfig
from llmrelay.providers.base import Channel
from llmrelay.providers.openai import OpenAICompatibleProvider
from llmrelay.relay.errors import RelayError
from llmrelay.relay.health import ChannelHealth, DisabledBy, Failure
from llmrelay.relay.routing import Router

SETTINGS = RoutingConfig(failures_to_cool_down=2, cooldown=1.0, max_cooldown=8.0)


def channel(name: str, priority: int = 0, weight: int = 1, max_parallel: int | None = None) -> Channel:
    config = ChannelConfig(
        name=name,
        type="openai",
        base_url=f"http://{name}/v1",
        api_key="",
        models=("m",),
        priority=priority,
        weight=weight,
        max_parallel=max_parallel,
    )
    health = ChannelHealth(name, SETTINGS, max_parallel)
    return Channel(config, OpenAICompatibleProvider(), health=health)


def names(router: Router, tried: list[Channel] | None = None) -> str:
    candidates = router.candidates("m")
    assert candidates is not None
    return router.choose("m", candidates, tried or []).channel.config.name


def refusal(router: Router) -> RelayError:
    candidates = router.candidates("m")
    assert candidates is not None
    with pytest.raises(RelayError) as caught:
        router.choose("m", candidates, [])
    return caught.value


def test_the_highest_tier_serves_and_the_lower_one_only_when_it_cannot() -> None:
    top, backup = channel("top", priority=5), channel("backup")
    router = Router([backup, top])
    assert names(router) == "top"
    assert names(router, [top]) == "backup"  # a channel this request tried is passed over
    top.health.disable("key refused", DisabledBy.GATEWAY)
    assert names(router) == "backup"


def test_weights_share_a_tier() -> None:
    heavy, light = channel("heavy", weight=3), channel("light", weight=1)
    router = Router([heavy, light], rng=random.Random(7))
    picks = [names(router) for _ in range(4000)]
    # Binomial(4000, 3/4): mean 3000, standard deviation 27; five of them either way.
    assert 2863 <= picks.count("heavy") <= 3137


def test_repeated_failures_rest_a_channel_for_a_growing_time_and_a_success_clears_it() -> None:
    health = ChannelHealth("c", SETTINGS)
    assert health.failed("m", Failure.FAILED, "HTTP 500") == 0.0  # one failure: no rest yet
    assert health.failed("m", Failure.FAILED, "HTTP 500") == 1.0  # the second in a row: the first rest
    assert health.rest_left("m", time.monotonic()) > 0.9
    assert health.rest_left("other", time.monotonic()) == 0.0  # rests are per model
    health.failed("m", Failure.FAILED, "HTTP 500")
    assert health.failed("m", Failure.FAILED, "HTTP 500") == 2.0  # doubled
    for _ in range(6):
        health.failed("m", Failure.FAILED, "HTTP 500")
    assert health.failed("m", Failure.FAILED, "HTTP 500") <= SETTINGS.max_cooldown  # bounded
    health.succeeded("m", 12)
    assert health.rest_left("m", time.monotonic()) == 0.0 and not health.resting
    assert health.failed("m", Failure.FAILED, "HTTP 500") == 0.0  # the record starts over


def test_a_429_rests_for_its_retry_after_within_bounds() -> None:
    health = ChannelHealth("c", SETTINGS)
    assert health.failed("m", Failure.RATE_LIMITED, "HTTP 429", retry_after=3.5) == 3.5
    assert health.failed("m", Failure.RATE_LIMITED, "HTTP 429", retry_after=600) == SETTINGS.max_cooldown
    assert health.failed("n", Failure.RATE_LIMITED, "HTTP 429") == SETTINGS.cooldown  # no Retry-After
    view = health.view()
    assert (view.state, view.cooling_models, view.last_error) == ("cooling_down", ("m", "n"), "HTTP 429")


def test_refused_credentials_disable_until_enabled() -> None:
    health = ChannelHealth("c", SETTINGS)
    health.failed("m", Failure.CREDENTIALS, "HTTP 401: bad key")
    view = health.view()
    assert (view.state, view.disabled_by, view.disabled_reason) == ("disabled", "gateway", "HTTP 401: bad key")
    health.enable()
    assert health.view().state == "ok"


def test_when_every_channel_rests_the_503_says_when_to_retry() -> None:
    first, second = channel("first"), channel("second")
    router = Router([first, second])
    first.health.failed("m", Failure.RATE_LIMITED, "HTTP 429", retry_after=2.2)
    second.health.failed("m", Failure.RATE_LIMITED, "HTTP 429", retry_after=5)
    error = refusal(router)
    assert (error.status, error.code, error.headers) == (503, "channels_cooling_down", [(b"retry-after", b"3")])


def test_busy_and_disabled_channels_get_their_own_503() -> None:
    only = channel("only", max_parallel=1)
    router = Router([only])
    only.health.in_flight = 1
    busy = refusal(router)
    assert (busy.code, busy.headers) == ("channels_busy", [(b"retry-after", b"1")])
    only.health.in_flight = 0
    only.health.disable("maintenance", DisabledBy.OPERATOR)
    disabled = refusal(router)
    assert (disabled.code, disabled.headers) == ("channels_unavailable", None)
