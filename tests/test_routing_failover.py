"""Several channels per model: failover before the first byte, rests (cooldowns), disabling, the probe,
operators' enable/disable, max_parallel and weighted choice, driven with the openai SDK through a real
gateway in front of three fake upstreams that misbehave on demand (tests/fakes/server.py, Fault)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI
from sqlalchemy import select

from llmrelay.metering.pricing import Usage
from llmrelay.metering.tokens import count_completion
from llmrelay.store.schema import usage_records
from tests.conftest import ADMIN_KEY, Gateway, call, make_gateway, wait_until
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import Fault

# Every scenario has its own model names (mapped to gpt-4o, so gpt-4o's price bills them): a channel's rests
# are per model, so one scenario's failures cannot steer another's routing.
ROUTES = {
    "a": ["fail-500", "fail-429", "hang", "dropped", "malformed", "both-fail", "client-error", "all-rest",
          "mid-stream", "weighted", "one-slot", "solo-slot", "disable-401", "operator", "stream-failover"],
    "b": ["fail-500", "fail-429", "hang", "dropped", "malformed", "both-fail", "client-error", "all-rest",
          "mid-stream", "weighted", "one-slot", "disable-401", "operator", "stream-failover"],
    "c": ["operator"],
}  # fmt: skip
CONFIG = """
channels:
  - name: alpha
    type: openai
    base_url: {a}
    api_key: ${{FAKE_UPSTREAM_KEY}}
    models: [{a_models}]
    model_map: {{{a_map}}}
    priority: 10
    max_parallel: 1
    timeout: {{connect: 1, first_byte: 1.5, idle: 1.5}}
  - name: bravo
    type: openai
    base_url: {b}
    api_key: ${{FAKE_UPSTREAM_KEY}}
    models: [{b_models}]
    model_map: {{{b_map}}}
    timeout: {{connect: 1, first_byte: 1.5, idle: 1.5}}
  - name: charlie
    type: openai
    base_url: {c}
    api_key: ${{FAKE_UPSTREAM_KEY}}
    models: [{c_models}]
    model_map: {{{c_map}}}
    priority: -5
routing:
  max_attempts: 3
  failures_to_cool_down: 1
  cooldown: 1
  max_cooldown: 30
  probe_interval: 0.5
"""


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeOpenAI]]:
    started = {name: FakeOpenAI().start() for name in "abc"}
    yield started
    for fake in started.values():
        fake.stop()


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory, fakes: dict[str, FakeOpenAI]) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("routed")
    gw = make_gateway(tmp, fakes["a"])
    values = {name: fake.base_url for name, fake in fakes.items()}
    for name, models in ROUTES.items():
        values[f"{name}_models"] = ", ".join(models)
        values[f"{name}_map"] = ", ".join(f"{model}: gpt-4o" for model in models)
    gw.config_path.write_text(CONFIG.format(**values))
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def no_faults_left(fakes: dict[str, FakeOpenAI]) -> Iterator[None]:
    yield
    for fake in fakes.values():
        fake.clear_faults()


@pytest.fixture(scope="module")
def key(routed: Gateway) -> str:
    return routed.create_key("router-user", quota_usd="50")


@pytest.fixture(scope="module")
def client(routed: Gateway, key: str) -> OpenAI:
    return OpenAI(api_key=key, base_url=routed.base_url, max_retries=0, timeout=30)


def ask(client: OpenAI, model: str, text: str = "hello there") -> openai.types.chat.ChatCompletion:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def seen(fake: FakeOpenAI, marker: str) -> int:
    return len(fake.requests_with(marker))


def record(gateway: Gateway, request_id: str) -> dict:
    engine = gateway.engine()
    try:

        def find() -> dict | None:
            with engine.connect() as conn:
                row = conn.execute(select(usage_records).where(usage_records.c.request_id == request_id)).first()
            return dict(row._mapping) if row else None

        found = wait_until(find, timeout=5)
    finally:
        engine.dispose()
    assert found, f"no usage record for {request_id}"
    return found


def admin_channels(gateway: Gateway) -> dict[str, dict]:
    reply = call("GET", f"{gateway.url}/admin/channels", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert reply.status == 200, reply.body
    return {view["name"]: view for view in reply.json()["data"]}


# ---- failover before the first byte ------------------------------------------------------------------------


def test_a_500_fails_over_and_the_client_sees_one_clean_success(
    routed: Gateway, client: OpenAI, fakes: dict[str, FakeOpenAI]
) -> None:
    fakes["a"].inject(Fault(status=500))
    raw = client.chat.completions.with_raw_response.create(
        model="fail-500", messages=[{"role": "user", "content": "marker-500"}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert (seen(fakes["a"], "marker-500"), seen(fakes["b"], "marker-500")) == (1, 1)
    row = record(routed, raw.headers["x-request-id"])
    assert (row["channel"], row["status"], row["http_status"]) == ("bravo", "ok", 200)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    log = routed.log()
    assert "attempt 1 for model fail-500 on channel alpha failed (HTTP 500" in log
    assert "retrying on channel bravo" in log


@pytest.mark.parametrize(
    ("model", "fault"),
    [
        ("hang", Fault(hang=4)),  # past alpha's 1.5 s first-byte limit
        ("dropped", Fault(drop=True)),
        ("malformed", Fault(malformed=True)),
    ],
)
def test_timeouts_dropped_connections_and_unreadable_replies_fail_over(
    client: OpenAI, fakes: dict[str, FakeOpenAI], model: str, fault: Fault
) -> None:
    fakes["a"].inject(fault)
    marker = f"marker-{model}"
    assert ask(client, model, marker).choices[0].message.content
    assert (seen(fakes["a"], marker), seen(fakes["b"], marker)) == (1, 1)


def test_a_stream_fails_over_before_its_first_byte(client: OpenAI, fakes: dict[str, FakeOpenAI]) -> None:
    fakes["a"].inject(Fault(malformed=True))  # a 200 JSON body where an event stream was asked for
    stream = client.chat.completions.create(
        model="stream-failover",
        messages=[{"role": "user", "content": "marker-stream-failover"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None
    assert (seen(fakes["a"], "marker-stream-failover"), seen(fakes["b"], "marker-stream-failover")) == (1, 1)


def test_a_failed_channel_is_not_tried_twice_and_the_last_error_reaches_the_client(
    routed: Gateway, client: OpenAI, fakes: dict[str, FakeOpenAI]
) -> None:
    fakes["a"].inject(Fault(status=500))
    fakes["b"].inject(Fault(status=503))
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "both-fail", "marker-both")
    assert caught.value.status_code == 503  # bravo's, the last attempt's
    assert caught.value.body["code"] == "upstream_503"
    # Three attempts were allowed, but only two channels serve the model: neither was asked twice.
    assert (seen(fakes["a"], "marker-both"), seen(fakes["b"], "marker-both")) == (1, 1)
    assert "no channel left to try" in routed.log()


def test_a_client_error_is_relayed_and_not_retried(client: OpenAI, fakes: dict[str, FakeOpenAI]) -> None:
    fakes["a"].inject(Fault(status=400))
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "client-error", "marker-400")
    assert caught.value.body["param"] is None or isinstance(caught.value.body["param"], str)
    assert "temperature" in caught.value.message  # the fake's own 400 message, relayed
    assert (seen(fakes["a"], "marker-400"), seen(fakes["b"], "marker-400")) == (1, 0)


# ---- rests, the all-resting 503, and relayed rate-limit headers ------------------------------------------


def test_a_429_rests_the_channel_for_its_retry_after_then_it_serves_again(
    routed: Gateway, client: OpenAI, fakes: dict[str, FakeOpenAI]
) -> None:
    fakes["a"].inject(Fault(status=429, headers={"Retry-After": "2"}))
    assert ask(client, "fail-429", "marker-429-first").choices[0].message.content
    assert (seen(fakes["a"], "marker-429-first"), seen(fakes["b"], "marker-429-first")) == (1, 1)
    views = admin_channels(routed)
    assert views["alpha"]["state"] == "cooling_down"
    assert "fail-429" in views["alpha"]["cooling_models"]
    assert views["alpha"]["cooling_until"] >= int(time.time())
    # While alpha rests for this model, bravo serves it without alpha being asked...
    ask(client, "fail-429", "marker-429-resting")
    assert (seen(fakes["a"], "marker-429-resting"), seen(fakes["b"], "marker-429-resting")) == (0, 1)
    # ...but alpha still serves other models...
    ask(client, "client-error", "marker-429-other-model")
    assert seen(fakes["a"], "marker-429-other-model") == 1
    # ...and once the rest is over, alpha (the higher tier) serves this one again.
    time.sleep(2.2)
    ask(client, "fail-429", "marker-429-recovered")
    assert (seen(fakes["a"], "marker-429-recovered"), seen(fakes["b"], "marker-429-recovered")) == (1, 0)
    listed = json.loads(routed.cli("channels", "list", "--json").stdout)
    assert {view["name"]: view["state"] for view in listed}["alpha"] in ("ok", "cooling_down")


def test_when_every_channel_rests_the_client_gets_a_503_with_retry_after_at_once(
    routed: Gateway, key: str, fakes: dict[str, FakeOpenAI]
) -> None:
    limited = {
        "Retry-After": "20",
        "retry-after-ms": "20000",
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "20s",
    }
    fakes["a"].inject(Fault(status=429, headers=limited))
    fakes["b"].inject(Fault(status=429, headers=limited))
    body = {"model": "all-rest", "messages": [{"role": "user", "content": "marker-all-rest"}]}
    auth = {"Authorization": f"Bearer {key}"}
    first = call("POST", f"{routed.base_url}/chat/completions", body, auth)
    # The last upstream 429 reaches the client as the upstream sent it: its type, code and retry headers.
    assert first.status == 429
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    assert first.json()["error"]["type"] == "requests"
    assert first.headers["retry-after"] == "20"
    assert first.headers["retry-after-ms"] == "20000"
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    assert first.headers["x-ratelimit-reset-requests"] == "20s"
    began = time.monotonic()
    second = call("POST", f"{routed.base_url}/chat/completions", body, auth)
    assert time.monotonic() - began < 1.0  # answered at once: no upstream was called
    assert second.status == 503
    assert second.json()["error"]["code"] == "channels_cooling_down"
    assert 18 <= int(second.headers["retry-after"]) <= 20
    assert (seen(fakes["a"], "marker-all-rest"), seen(fakes["b"], "marker-all-rest")) == (1, 1)


def test_the_openai_sdk_retries_a_resting_503_after_its_retry_after(
    routed: Gateway, key: str, fakes: dict[str, FakeOpenAI]
) -> None:
    fakes["a"].inject(Fault(status=429, headers={"Retry-After": "1"}))
    fakes["b"].inject(Fault(status=429, headers={"Retry-After": "1"}))
    patient = OpenAI(api_key=key, base_url=routed.base_url, max_retries=3, timeout=30)
    # The SDK retries the 429 and then the 503 (each after its Retry-After) until a channel has rested.
    reply = ask(patient, "weighted", "marker-sdk-retry")
    assert reply.choices[0].message.content


# ---- a stream that breaks after its first byte -------------------------------------------------------------


def test_a_stream_cut_after_its_first_byte_ends_with_an_error_and_bills_what_was_delivered(
    routed: Gateway, client: OpenAI, fakes: dict[str, FakeOpenAI]
) -> None:
    stream = client.chat.completions.with_raw_response.create(
        model="mid-stream",
        messages=[{"role": "user", "content": "#fake:cut marker-cut"}],
        stream=True,
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream.parse():
            received.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "connection was lost" in str(caught.value.message)
    # No retry once bytes were sent: bravo never saw it.
    assert (seen(fakes["a"], "marker-cut"), seen(fakes["b"], "marker-cut")) == (1, 0)
    row = record(routed, stream.headers["x-request-id"])
    assert row["status"] == "upstream_disconnected"
    assert row["channel"] == "alpha"
    assert row["completion_tokens"] == count_completion(["".join(received)], "gpt-4o")
    price = Usage(row["prompt_tokens"], row["completion_tokens"])
    assert row["cost_nano"] == 2_500 * price.prompt_tokens + 10_000 * price.completion_tokens  # gpt-4o: $2.50/$10


# ---- max_parallel and weights -------------------------------------------------------------------------------


def test_a_channel_at_its_max_parallel_passes_requests_to_the_next(
    client: OpenAI, fakes: dict[str, FakeOpenAI]
) -> None:
    fakes["a"].inject(Fault(hang=1.0))  # alpha (max_parallel 1) holds the first request a while
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(ask, client, "one-slot", "marker-slot-1")
        time.sleep(0.3)
        fast = pool.submit(ask, client, "one-slot", "marker-slot-2")
        assert fast.result().choices and slow.result().choices
    assert seen(fakes["a"], "marker-slot-1") == 1
    assert (seen(fakes["a"], "marker-slot-2"), seen(fakes["b"], "marker-slot-2")) == (0, 1)


def test_a_model_whose_only_channel_is_full_gets_a_503_at_once(
    routed: Gateway, client: OpenAI, fakes: dict[str, FakeOpenAI]
) -> None:
    fakes["a"].inject(Fault(hang=1.0))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(ask, client, "solo-slot", "marker-solo-1")
        time.sleep(0.3)
        with pytest.raises(openai.InternalServerError) as caught:
            ask(client, "solo-slot", "marker-solo-2")
        assert slow.result().choices
    assert caught.value.status_code == 503
    assert caught.value.body["code"] == "channels_busy"
    assert caught.value.response.headers["retry-after"] == "1"


def test_weighted_choice_within_a_tier_follows_the_weights(tmp_path: Path, fakes: dict[str, FakeOpenAI]) -> None:
    config = f"""
channels:
  - {{name: heavy, type: openai, base_url: "{fakes["a"].base_url}", api_key: "${{FAKE_UPSTREAM_KEY}}",
     models: [gpt-4o-mini], weight: 3}}
  - {{name: light, type: openai, base_url: "{fakes["b"].base_url}", api_key: "${{FAKE_UPSTREAM_KEY}}",
     models: [gpt-4o-mini], weight: 1}}
  - {{name: spare, type: openai, base_url: "{fakes["c"].base_url}", api_key: "${{FAKE_UPSTREAM_KEY}}",
     models: [gpt-4o-mini], priority: -1}}
"""
    gw = make_gateway(tmp_path, fakes["a"])
    gw.config_path.write_text(config)
    gw.start()
    try:
        weighted = OpenAI(api_key=gw.create_key("weights"), base_url=gw.base_url, max_retries=0)
        total = 400
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: ask(weighted, "gpt-4o-mini", f"marker-weight-{i}"), range(total)))
        heavy, light, spare = (len(fakes[name].requests_with("marker-weight-")) for name in "abc")
    finally:
        gw.stop()
    assert heavy + light == total and spare == 0  # the lower tier is only for when the upper one fails
    # Binomial(400, 3/4): mean 300, standard deviation 8.7; five deviations either way fail once in ~3.5 million.
    assert 257 <= heavy <= 343, (heavy, light)


# ---- disabling, the probe, and operators ---------------------------------------------------------------------


def test_an_upstream_refusing_the_key_disables_the_channel_until_the_probe_sees_it_work(
    routed: Gateway, client: OpenAI, fakes: dict[str, FakeOpenAI]
) -> None:
    # Out of credit (OpenAI's 429 insufficient_quota) on every call, probes included, until cleared.
    fakes["a"].standing_fault = Fault(
        status=429,
        body={"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota",
                        "param": None, "code": "insufficient_quota"}},
    )  # fmt: skip
    assert ask(client, "disable-401", "marker-disable").choices[0].message.content
    assert (seen(fakes["a"], "marker-disable"), seen(fakes["b"], "marker-disable")) == (1, 1)
    alpha = admin_channels(routed)["alpha"]
    assert (alpha["state"], alpha["disabled_by"]) == ("disabled", "gateway")
    assert "quota" in alpha["disabled_reason"]
    assert "channel disabled" in routed.log()
    # Disabled for every model, not only the one that failed.
    ask(client, "fail-500", "marker-while-disabled")
    assert seen(fakes["a"], "marker-while-disabled") == 0
    listed = {view["name"]: view for view in json.loads(routed.cli("channels", "list", "--json").stdout)}
    assert wait_until(
        lambda: (
            {v["name"]: v for v in json.loads(routed.cli("channels", "list", "--json").stdout)}["alpha"]["state"]
            == "disabled"
        ),
        timeout=5,
    ), listed
    # The upstream accepts the key again: the probe (every 0.5 s here) brings the channel back.
    fakes["a"].clear_faults()
    assert wait_until(lambda: admin_channels(routed)["alpha"]["state"] == "ok", timeout=10)
    ask(client, "disable-401", "marker-reenabled")
    assert seen(fakes["a"], "marker-reenabled") == 1
    assert "passed its health probe" in routed.log()


def test_operators_disable_and_enable_channels_from_the_cli_and_the_admin_api(
    routed: Gateway, client: OpenAI, fakes: dict[str, FakeOpenAI]
) -> None:
    routed.cli("channels", "disable", "alpha", "--reason", "maintenance window")
    assert wait_until(lambda: admin_channels(routed)["alpha"]["state"] == "disabled", timeout=3)
    alpha = admin_channels(routed)["alpha"]
    assert (alpha["disabled_by"], alpha["disabled_reason"]) == ("operator", "maintenance window")
    ask(client, "operator", "marker-op-1")
    assert (seen(fakes["a"], "marker-op-1"), seen(fakes["b"], "marker-op-1")) == (0, 1)
    # The probe leaves a channel an operator disabled alone.
    time.sleep(1.2)
    assert admin_channels(routed)["alpha"]["state"] == "disabled"
    routed.cli("channels", "enable", "alpha")
    assert wait_until(lambda: admin_channels(routed)["alpha"]["state"] == "ok", timeout=3)
    ask(client, "operator", "marker-op-2")
    assert seen(fakes["a"], "marker-op-2") == 1

    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for name in ("alpha", "bravo"):
        reply = call("POST", f"{routed.url}/admin/channels/{name}/disable", {"reason": "drill"}, auth)
        assert reply.status == 200 and reply.json()["state"] == "disabled"
    ask(client, "operator", "marker-op-3")  # the backup tier serves
    assert (seen(fakes["a"], "marker-op-3"), seen(fakes["b"], "marker-op-3"), seen(fakes["c"], "marker-op-3")) == (
        0,
        0,
        1,
    )
    for name in ("alpha", "bravo"):
        assert call("POST", f"{routed.url}/admin/channels/{name}/enable", None, auth).json()["state"] == "ok"
    missing = call("POST", f"{routed.url}/admin/channels/nope/enable", None, auth)
    assert missing.status == 404 and missing.json()["error"]["code"] == "not_found"
    unknown = routed.cli("channels", "disable", "nope", check=False)
    assert unknown.returncode == 2 and "no channel named 'nope'" in unknown.stderr


def test_channels_test_sends_a_minimal_request_through_each_channel(
    routed: Gateway, fakes: dict[str, FakeOpenAI]
) -> None:
    ok = routed.cli("channels", "test")
    assert ok.returncode == 0
    assert [line.split()[0] for line in ok.stdout.splitlines()[1:]] == ["alpha", "bravo", "charlie"]
    assert all(" ok " in line for line in ok.stdout.splitlines()[1:])
    fakes["c"].standing_fault = Fault(status=401)
    failing = routed.cli("channels", "test", "charlie", check=False)
    assert failing.returncode == 1
    assert "FAILED" in failing.stdout and "HTTP 401" in failing.stdout
    assert os.environ.get("FAKE_UPSTREAM_KEY", "\0") not in failing.stdout
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    reply = call("POST", f"{routed.url}/admin/channels/charlie/test", None, auth).json()
    assert (reply["ok"], reply["channel"]) == (False, "charlie")
    assert reply["detail"].startswith("HTTP 401")
