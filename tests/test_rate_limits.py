"""Per-key limits end to end: requests per minute, tokens per minute and requests in flight hold exactly under
concurrent load, with OpenAI's x-ratelimit-* headers and a 429 rate_limit_exceeded with Retry-After."""

from __future__ import annotations

import concurrent.futures
import json

import openai
import pytest
from openai import OpenAI

from llmrelay.metering.tokens import prompt_token_bound
from tests.conftest import Gateway, Reply, call


def burst(gateway: Gateway, key: str, count: int, text: str, **fields: object) -> list[Reply]:
    """`count` chat requests sent at once (as curl would), their replies in order."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **fields}
    auth = {"Authorization": f"Bearer {key}"}
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: call("POST", f"{gateway.base_url}/chat/completions", body, auth), range(count)))


def assert_limited(reply: Reply, kind: str) -> None:
    assert reply.status == 429
    error = reply.json()["error"]
    assert (error["code"], error["type"]) == ("rate_limit_exceeded", kind)
    assert int(reply.headers["retry-after"]) >= 1


def test_requests_per_minute_hold_exactly_under_a_burst(gateway: Gateway) -> None:
    key = gateway.create_key("limits-rpm", "--rpm", "3")
    replies = burst(gateway, key, 8, "hello")
    passed = [r for r in replies if r.status == 200]
    assert len(passed) == 3
    for reply in replies:
        if reply.status != 200:
            assert_limited(reply, "requests")
            assert "requests per minute" in reply.json()["error"]["message"]
    # Every reply, refused ones too, tells the client where it stands.
    assert {r.headers["x-ratelimit-limit-requests"] for r in replies} == {"3"}
    assert sorted(r.headers["x-ratelimit-remaining-requests"] for r in passed) == ["0", "1", "2"]
    assert all(r.headers["x-ratelimit-reset-requests"].endswith("s") for r in replies)
    assert "x-ratelimit-limit-tokens" not in passed[0].headers  # no TPM limit on this key
    info = call("GET", f"{gateway.base_url}/user/info", headers={"Authorization": f"Bearer {key}"}).json()
    assert info["limits"]["requests_per_minute"] == 3


def test_requests_in_flight_hold_exactly(gateway: Gateway) -> None:
    key = gateway.create_key("limits-parallel", "--max-parallel", "2")
    replies = burst(gateway, key, 6, "#fake:sleep=0.6 hello")  # each holds its slot 0.6 s
    assert sum(r.status == 200 for r in replies) == 2
    for reply in replies:
        if reply.status != 200:
            assert_limited(reply, "requests")
            assert "in flight" in reply.json()["error"]["message"]
    # Slots are given back when requests end.
    assert burst(gateway, key, 2, "again")[0].status == 200


def test_tokens_per_minute_hold_exactly_on_the_estimate_and_are_corrected_to_the_usage(gateway: Gateway) -> None:
    text = "#fake:sleep=0.6 count these words please"
    estimate = -(-prompt_token_bound([{"role": "user", "content": text}], None, "gpt-4o") // 4) + 20
    limit = 3 * estimate + estimate // 2  # room for three requests, not four
    key = gateway.create_key("limits-tpm", "--tpm", str(limit))
    replies = burst(gateway, key, 8, text, max_tokens=20)
    passed = [r for r in replies if r.status == 200]
    assert len(passed) == 3
    for reply in replies:
        if reply.status != 200:
            assert_limited(reply, "tokens")
    assert {r.headers["x-ratelimit-limit-tokens"] for r in replies} == {str(limit)}
    remaining = sorted(int(r.headers["x-ratelimit-remaining-tokens"]) for r in passed)
    assert remaining[0] >= limit - 3 * estimate - 1  # the estimates were charged at admission (a little refills)
    # After the replies, the charge is what the upstream reported (less than the estimate): the next request
    # sees more tokens left than the admission charges alone would leave.
    used = sum(json.loads(r.body)["usage"]["total_tokens"] for r in passed)
    assert used < 3 * estimate
    after = burst(gateway, key, 1, "hi", max_tokens=1)[0]
    assert int(after.headers["x-ratelimit-remaining-tokens"]) >= limit - used - (estimate - 19) - 1


def test_a_request_larger_than_the_tpm_limit_is_refused_for_good(gateway: Gateway) -> None:
    key = gateway.create_key("limits-tiny-tpm", "--tpm", "10")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=2)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=50)
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.response.headers.get("x-should-retry") == "false"  # the SDK did not retry in vain


def test_a_key_without_limits_gets_no_rate_limit_headers(gateway: Gateway, key: str) -> None:
    reply = burst(gateway, key, 1, "hello")[0]
    assert reply.status == 200
    assert not [name for name in reply.headers if name.startswith("x-ratelimit")]


def test_the_openai_sdk_waits_out_a_rate_limit_by_the_headers(gateway: Gateway) -> None:
    key = gateway.create_key("limits-sdk", "--rpm", "60")  # one request a second
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=3)
    replies = [
        client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}], max_tokens=5
        )
        for i in range(62)
    ]
    assert all(r.http_response.status_code == 200 for r in replies)  # the 61st and 62nd waited ~1 s each
    assert replies[-1].headers["x-ratelimit-limit-requests"] == "60"
