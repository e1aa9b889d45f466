"""Every failure reaches the client as an OpenAI-shaped error with the right status, never a traceback."""

from __future__ import annotations

import json
import time
from datetime import datetime

import openai
import pytest
from openai import OpenAI

from tests.conftest import Gateway, Reply, call, wait_until
from tests.fakes.openai_upstream import UPSTREAM_SECRET

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}


def assert_openai_error(reply_body: dict, code: str | None = None) -> dict:
    error = reply_body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def test_missing_key_is_401(gateway: Gateway) -> None:
    reply = call("POST", f"{gateway.base_url}/chat/completions", CHAT)
    assert reply.status == 401
    assert_openai_error(reply.json(), "missing_api_key")


def test_wrong_key_is_401_in_the_sdk(gateway: Gateway) -> None:
    client = OpenAI(api_key="sk-not-a-real-key-000000000000", base_url=gateway.base_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(**CHAT)
    assert raised.value.status_code == 401
    assert raised.value.code == "invalid_api_key"


def test_disabled_and_expired_keys_are_refused(gateway: Gateway) -> None:
    disabled = gateway.create_key("errors-disabled")
    gateway.cli("keys", "disable", "errors-disabled")

    def refused() -> Reply | None:
        reply = call("POST", f"{gateway.base_url}/chat/completions", CHAT, {"Authorization": disabled})
        return reply if reply.status == 401 else None

    reply = wait_until(refused, timeout=1.0)
    assert reply is not None, "a disabled key must stop working within a second"
    assert_openai_error(reply.json(), "api_key_disabled")

    expired = gateway.create_key("errors-expiring", "--expires", "6s")
    expires_at = json.loads(gateway.cli("keys", "show", "errors-expiring").stdout)["expires_at"]
    time.sleep(max(0.0, datetime.fromisoformat(expires_at).timestamp() - time.time()) + 0.1)
    reply = call("POST", f"{gateway.base_url}/chat/completions", CHAT, {"Authorization": expired})
    assert reply.status == 401
    assert_openai_error(reply.json(), "api_key_expired")


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("gpt-nonexistent", "does not exist"),
        ("unpriced-model", "no price"),
    ],
)
def test_unknown_or_unpriced_model_is_404(client: OpenAI, model: str, reason: str) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "model_not_found"
    assert reason in raised.value.message


def test_model_outside_the_key_allow_list_is_404(gateway: Gateway) -> None:
    limited = gateway.create_key("errors-limited", "--models", "gpt-4o-mini")
    client = OpenAI(api_key=limited, base_url=gateway.base_url, max_retries=0)
    assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).choices
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "gpt-4o"}', "messages"),
        (b'{"model": "gpt-4o", "messages": []}', "messages"),
        (b'{"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "gpt-4o", "messages": [{"role": {}, "content": null}]}', "messages[0].role"),  # gave 500
        (b'{"model": "gpt-4o", "messages": [{"role": ["user"], "content": "x"}]}', "messages[0].role"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": -5}', "max_tokens"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10.5}', "max_tokens"),
        # issue 9: nested past what the gateway re-encodes (this gave a 500)
        (
            b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "tools": '
            + b"[" * 260
            + b"]" * 260
            + b"}",
            "tools",
        ),
    ],
)
def test_malformed_requests_are_400(gateway: Gateway, key: str, raw: bytes, param: str | None) -> None:
    reply = call("POST", f"{gateway.base_url}/chat/completions", raw=raw, headers={"Authorization": key})
    assert reply.status == 400
    error = assert_openai_error(reply.json())
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_oversized_body_is_413(gateway: Gateway, key: str) -> None:
    big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 2_100_000}]}
    reply = call("POST", f"{gateway.base_url}/chat/completions", big, {"Authorization": key})
    assert reply.status == 413
    assert_openai_error(reply.json(), "request_too_large")


def test_upstream_400_and_429_are_relayed_with_status_and_message(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "#fake:error=400"}])
    assert "temperature" in bad.value.message
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "#fake:error=429"}])
    assert "Rate limit reached" in limited.value.message


def test_upstream_500_is_relayed(client: OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "#fake:error=500"}], stream=True
        )
    assert raised.value.status_code == 500


def test_upstream_credential_failure_is_502_and_leaks_no_secret(gateway: Gateway, key: str) -> None:
    reply = call(
        "POST",
        f"{gateway.base_url}/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "#fake:error=401"}]},
        {"Authorization": key},
    )
    assert reply.status == 502
    assert_openai_error(reply.json(), "upstream_auth_failed")
    assert UPSTREAM_SECRET.encode() not in reply.body
    assert b"sk-upstream" not in reply.body
    assert UPSTREAM_SECRET not in gateway.log()
    # The upstream refused the gateway's key: the channel is disabled (it would be skipped by failover) until
    # an operator or the probe enables it again.
    before = gateway.enable_channel("fake")
    assert (before["state"], before["disabled_by"]) == ("disabled", "gateway")


def test_unreachable_upstream_is_502(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="dead-model", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 502
    assert raised.value.code == "bad_gateway"
    assert "sk-dead" not in raised.value.message


def test_upstream_timeout_is_504(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "#fake:sleep=3"}])
    assert raised.value.status_code == 504
    assert raised.value.code == "upstream_timeout"


def test_unknown_path_and_wrong_method(gateway: Gateway, key: str) -> None:
    missing = call("POST", f"{gateway.base_url}/no/such/thing", CHAT, {"Authorization": key})
    assert missing.status == 404
    assert_openai_error(missing.json())
    wrong = call("GET", f"{gateway.base_url}/chat/completions", headers={"Authorization": key})
    assert wrong.status == 405
    assert_openai_error(wrong.json())


def test_insufficient_quota_is_429(gateway: Gateway) -> None:
    poor = gateway.create_key("errors-poor", quota_usd="0.000001")
    client = OpenAI(api_key=poor, base_url=gateway.base_url, max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=100)
    assert raised.value.code == "insufficient_quota"
    assert raised.value.body["type"] == "insufficient_quota"


def test_a_model_name_longer_than_a_usage_record_holds_is_400(client: OpenAI) -> None:
    # "gpt-4-gizmo-*" routes any such name; a 300-character one would fail the usage insert on PostgreSQL.
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-4-gizmo-" + "g" * 300, messages=[{"role": "user", "content": "hi"}])
    assert raised.value.body["param"] == "model"
