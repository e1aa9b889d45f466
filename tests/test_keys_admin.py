"""Key management from the CLI and the admin API, honoured by the running gateway within a second."""

from __future__ import annotations

import json
import subprocess
import sys

import openai
import pytest
from openai import OpenAI

from tests.conftest import ADMIN_KEY, Gateway, call, wait_until

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "key lifecycle"}]}


def chat_status(gateway: Gateway, key: str) -> int:
    return call("POST", f"{gateway.base_url}/chat/completions", CHAT, {"Authorization": f"Bearer {key}"}).status


def balance(gateway: Gateway, key: str) -> float:
    return call("GET", f"{gateway.base_url}/user/info", headers={"Authorization": key}).json()["balance_usd"]


def test_cli_lifecycle_is_honoured_within_a_second(gateway: Gateway) -> None:
    key = gateway.create_key("cli-alice", "--models", "gpt-4o-mini,gpt-4o", quota_usd="5")
    assert key.startswith("sk-") and len(key) > 40
    assert chat_status(gateway, key) == 200

    listing = gateway.cli("keys", "list").stdout
    line = next(row for row in listing.splitlines() if " cli-alice " in f" {row} ")
    assert key[:7] in line and "active" in line and "gpt-4o-mini,gpt-4o" in line
    assert listing.splitlines()[0].split()[:8] == [
        "id",
        "name",
        "prefix",
        "balance",
        "used",
        "requests",
        "status",
        "expires",
    ]

    gateway.cli("keys", "disable", "cli-alice")
    assert wait_until(lambda: chat_status(gateway, key) == 401, timeout=1.0)
    gateway.cli("keys", "enable", "cli-alice")
    assert wait_until(lambda: chat_status(gateway, key) == 200, timeout=1.0)

    before = balance(gateway, key)
    gateway.cli("keys", "topup", "cli-alice", "--usd", "2.5")
    assert wait_until(lambda: abs(balance(gateway, key) - (before + 2.5)) < 1e-9, timeout=1.0)

    key_id = json.loads(gateway.cli("keys", "show", "cli-alice").stdout)["id"]
    gateway.cli("keys", "update", str(key_id), "--models", "gpt-4o")
    assert wait_until(lambda: chat_status(gateway, key) == 404, timeout=1.0)

    gateway.cli("keys", "delete", str(key_id))  # addressed by id
    assert wait_until(lambda: chat_status(gateway, key) == 401, timeout=1.0)
    assert " cli-alice " not in gateway.cli("keys", "list").stdout


def test_cli_rejects_bad_input_with_a_message(gateway: Gateway) -> None:
    for args, words in [
        (("keys", "create", "--name", "no-quota"), "quota"),
        (("keys", "create", "--name", "bad", "--quota-usd", "five"), "USD"),
        (("keys", "create", "--name", "old", "--quota-usd", "1", "--expires", "2001-01-01"), "past"),
        (("keys", "disable", "nobody-has-this-name"), "no key"),
        (("keys", "topup", "nobody-has-this-name", "--usd", "1"), "no key"),
    ]:
        result = gateway.cli(*args, check=False)
        assert result.returncode == 2, args
        assert words in result.stderr and "Traceback" not in result.stderr
    gateway.create_key("dup-name")
    duplicate = gateway.cli("keys", "create", "--name", "dup-name", "--quota-usd", "1", check=False)
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr


def limits_shown(gateway: Gateway, key: str) -> dict:
    info = call("GET", f"{gateway.base_url}/user/info", headers={"Authorization": f"Bearer {key}"}).json()
    limits = info["limits"]
    return {name: limits[name] for name in ("requests_per_minute", "tokens_per_minute", "max_parallel_requests")}


def test_cli_sets_shows_and_clears_rate_limits(gateway: Gateway) -> None:
    key = gateway.create_key("cli-limited", "--rpm", "60", "--tpm", "10000", "--max-parallel", "4")
    shown = json.loads(gateway.cli("keys", "show", "cli-limited").stdout)
    assert (shown["rpm"], shown["tpm"], shown["max_parallel"]) == (60, 10_000, 4)
    assert limits_shown(gateway, key) == {
        "requests_per_minute": 60,
        "tokens_per_minute": 10_000,
        "max_parallel_requests": 4,
    }
    table = gateway.cli("keys", "list").stdout.splitlines()
    assert table[0].split()[-1] == "limits"
    assert next(row for row in table if " cli-limited " in f" {row} ").rstrip().endswith(" 60rpm 10ktpm 4par")

    gateway.cli("keys", "update", "cli-limited", "--rpm", "0", "--tpm", "none", "--max-parallel", "8")
    assert wait_until(
        lambda: (
            limits_shown(gateway, key)
            == {"requests_per_minute": None, "tokens_per_minute": None, "max_parallel_requests": 8}
        ),
        timeout=1.0,
    )
    gateway.cli("keys", "update", "cli-limited", "--expires", "never")  # no limit flags: the limits stay
    listed = json.loads(gateway.cli("keys", "list", "--json").stdout)
    mine = next(k for k in listed if k["name"] == "cli-limited")
    assert (mine["rpm"], mine["tpm"], mine["max_parallel"]) == (None, None, 8)

    gateway.create_key("cli-unlimited-rate", "--rpm", "0")  # 0 is no limit when creating too
    shown = json.loads(gateway.cli("keys", "show", "cli-unlimited-rate").stdout)
    assert (shown["rpm"], shown["tpm"], shown["max_parallel"]) == (None, None, None)
    row = next(r for r in gateway.cli("keys", "list").stdout.splitlines() if " cli-unlimited-rate " in f" {r} ")
    assert row.rstrip().endswith(" -")


def test_usage_cli_reports_per_key_and_model(gateway: Gateway) -> None:
    key = gateway.create_key("usage-reporter", quota_usd="1")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "usage"}])

    def report() -> dict:
        return json.loads(gateway.cli("usage", "--key", "usage-reporter", "--json").stdout)

    data = wait_until(lambda: (r := report())["total"]["requests"] == 3 and r)
    assert data, "the three requests reach the usage report"
    assert data["keys"][0]["name"] == "usage-reporter"
    assert [m["model"] for m in data["models"]] == ["gpt-4o-mini"]
    table = gateway.cli("usage", "--days", "1").stdout
    assert "usage-reporter" in table and "gpt-4o-mini" in table and "TOTAL" in table


def admin(gateway: Gateway, method: str, path: str, body: object = None, token: str = ADMIN_KEY):  # type: ignore[no-untyped-def]
    return call(method, f"{gateway.url}/admin/{path}", body, {"Authorization": f"Bearer {token}"})


def test_admin_api_lifecycle_applies_immediately(gateway: Gateway) -> None:
    created = admin(gateway, "POST", "keys", {"name": "api-bob", "quota_usd": "3", "models": ["gpt-4o-mini"]})
    assert created.status == 201, created.body
    body = created.json()
    key = body["key"]
    assert body["quota_usd"] == 3 and body["allowed_models"] == ["gpt-4o-mini"]
    assert chat_status(gateway, key) == 200  # no wait: the admin API updates this node's cache at once

    assert admin(gateway, "POST", "keys/api-bob/disable").json()["status"] == "disabled"
    assert chat_status(gateway, key) == 401
    assert admin(gateway, "POST", "keys/api-bob/enable").json()["status"] == "active"
    assert chat_status(gateway, key) == 200
    topped = admin(gateway, "POST", "keys/api-bob/topup", {"usd": 1.25}).json()
    assert topped["quota_usd"] == 4.25
    patched = admin(gateway, "PATCH", f"keys/{body['id']}", {"expires_at": "2099-12-31"}).json()
    assert patched["expires_at"] == "2099-12-31T00:00:00Z"
    listed = admin(gateway, "GET", "keys").json()["data"]
    assert any(k["name"] == "api-bob" and k["request_count"] == 2 for k in listed)
    usage = admin(gateway, "GET", "usage?key=api-bob&days=1").json()
    assert usage["total"]["requests"] == 2
    assert admin(gateway, "DELETE", "keys/api-bob").json()["deleted"] is True
    assert chat_status(gateway, key) == 401
    assert admin(gateway, "GET", "keys/api-bob").status == 404


def test_admin_api_sets_and_clears_rate_limits(gateway: Gateway) -> None:
    created = admin(gateway, "POST", "keys", {"name": "api-limited", "unlimited": True, "rpm": 60, "tpm": 1000})
    assert created.status == 201, created.body
    body = created.json()
    assert (body["rpm"], body["tpm"], body["max_parallel"]) == (60, 1000, None)
    key = body["key"]
    assert limits_shown(gateway, key) == {  # no wait: the admin API updates this node's cache at once
        "requests_per_minute": 60,
        "tokens_per_minute": 1000,
        "max_parallel_requests": None,
    }
    patched = admin(gateway, "PATCH", "keys/api-limited", {"rpm": None, "max_parallel": 2})
    assert patched.status == 200, patched.body
    assert (patched.json()["rpm"], patched.json()["tpm"], patched.json()["max_parallel"]) == (None, 1000, 2)
    assert limits_shown(gateway, key) == {
        "requests_per_minute": None,
        "tokens_per_minute": 1000,
        "max_parallel_requests": 2,
    }
    shown = admin(gateway, "GET", "keys/api-limited").json()
    assert (shown["rpm"], shown["tpm"], shown["max_parallel"]) == (None, 1000, 2)
    plain = admin(gateway, "POST", "keys", {"name": "api-no-limits", "quota_usd": 1}).json()
    assert (plain["rpm"], plain["tpm"], plain["max_parallel"]) == (None, None, None)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "keys", {"name": "x"}, 400),
        ("POST", "keys", {"name": "y", "quota_usd": "lots"}, 400),
        ("POST", "keys/nobody/topup", {"usd": 1}, 404),
        ("POST", "keys/nobody/topup", {}, 400),
        ("GET", "nothing-here", None, 404),
        # issue 9: values that gave 500 (and, for the expiry, created a key no listing could show)
        ("POST", "keys", {"name": "m", "quota_usd": 1, "models": 5}, 400),
        ("POST", "keys", {"name": "future", "quota_usd": 1, "expires_at": 999999999999}, 400),
        ("POST", "keys", {"name": "far", "quota_usd": 1, "expires_at": "9999999999999999d"}, 400),
        ("PATCH", "keys/nobody", {"expires_at": "9999999999999999d"}, 400),
        ("GET", "usage?days=999999999", None, 400),
        ("GET", "usage?until=9999999999999", None, 400),
    ],
)
def test_admin_api_errors(gateway: Gateway, method: str, path: str, body: object, status: int) -> None:
    reply = admin(gateway, method, path, body)
    assert reply.status == status
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}


def test_admin_api_requires_the_admin_key(gateway: Gateway) -> None:
    assert admin(gateway, "GET", "keys", token="wrong").status == 401
    user_key = gateway.create_key("not-an-admin")
    assert admin(gateway, "GET", "keys", token=user_key).status == 401


def test_models_list_and_retrieve_follow_the_key(gateway: Gateway) -> None:
    everything = OpenAI(api_key=gateway.create_key("models-all"), base_url=gateway.base_url, max_retries=0)
    ids = {m.id for m in everything.models.list()}
    assert {"gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo", "alias-mini", "dead-model"} <= ids
    assert "unpriced-model" not in ids  # cannot be billed, so not offered
    assert everything.models.retrieve("gpt-4o").id == "gpt-4o"
    assert everything.models.retrieve("gpt-4-gizmo-g-xyz").owned_by == "openai"  # glob-routed
    with pytest.raises(openai.NotFoundError):
        everything.models.retrieve("gpt-unknown")

    limited = OpenAI(
        api_key=gateway.create_key("models-limited", "--models", "gpt-4o*"), base_url=gateway.base_url, max_retries=0
    )
    assert {m.id for m in limited.models.list()} == {"gpt-4o", "gpt-4o-mini", "gpt-4o-all"}
    with pytest.raises(openai.NotFoundError):
        limited.models.retrieve("gpt-3.5-turbo")


def test_a_closed_output_pipe_is_not_a_traceback(gateway: Gateway) -> None:
    # `llmrelay usage | head -1`: the reader leaves early; the command ends quietly.
    command = [sys.executable, "-m", "llmrelay", "--config", str(gateway.config_path), "keys", "list"]
    producer = subprocess.Popen(command, env=gateway.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert producer.stdout is not None
    producer.stdout.close()  # nobody reads
    _, stderr = producer.communicate(timeout=60)
    assert b"Traceback" not in stderr
    assert producer.returncode == 0
