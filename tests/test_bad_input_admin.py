"""Bad operator input that gave 500 (issue 9): the admin API and the CLI answer every unusable value with a
clear 400 (exit status 2) before anything is written, and one stored key that cannot be rendered does not
break a listing."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import pytest
from sqlalchemy import insert, select

from llmrelay.store.keys import display_prefix, generate_key, hash_key, next_revision
from llmrelay.store.schema import api_keys
from tests.conftest import ADMIN_KEY, Gateway, call, wait_until


def admin(gateway: Gateway, method: str, path: str, body: object = None):  # type: ignore[no-untyped-def]
    return call(method, f"{gateway.url}/admin/{path}", body, {"Authorization": f"Bearer {ADMIN_KEY}"})


def assert_400(reply, fragment: str, param: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert fragment in error["message"], error["message"]
    assert "Traceback" not in error["message"] and "request id" not in error["message"]
    if param is not None:
        assert error["param"] == param
    return error


def key_names(gateway: Gateway) -> set[str]:
    reply = admin(gateway, "GET", "keys")
    assert reply.status == 200, reply.body
    return {k["name"] for k in reply.json()["data"]}


@pytest.mark.parametrize(
    ("body", "fragment", "param"),
    [
        ({"models": 5}, "models", "models"),
        ({"models": {"gpt-4o": True}}, "models", "models"),
        ({"models": True}, "models", "models"),
        ({"expires_at": "9999999999999999d"}, "9999", "expires_at"),
        ({"expires_at": 999999999999}, "9999", "expires_at"),
        ({"expires_at": "99999-01-01"}, "expires_at", "expires_at"),
        ({"expires_at": "9" * 5000 + "d"}, "expires_at", "expires_at"),
        ({"expires_at": "9" * 5000}, "expires_at", "expires_at"),
        ({"expires_at": -5}, "past", "expires_at"),
        ({"expires_at": [1]}, "expires_at", "expires_at"),
        ({"name": 5}, "name", "name"),
        ({"name": "x" * 201}, "200", "name"),
        ({"unlimited": "false", "quota_usd": None}, "unlimited", "unlimited"),
        ({"quota_usd": [1]}, "quota", "quota_usd"),
        ({"rpm": 0}, "rpm", "rpm"),
        ({"rpm": 1_000_000_001}, "1,000,000,000", "rpm"),
        ({"tpm": "100"}, "tpm", "tpm"),
        ({"tpm": 2.5}, "tpm", "tpm"),
        ({"max_parallel": True}, "max_parallel", "max_parallel"),
        ({"max_parallel": -4}, "max_parallel", "max_parallel"),
    ],
)
def test_create_refuses_unusable_fields_and_writes_nothing(
    gateway: Gateway, body: dict, fragment: str, param: str
) -> None:
    request = {"name": "bad-admin-create", "quota_usd": 1, **body}
    if request.get("quota_usd") is None:
        request.pop("quota_usd")
    assert_400(admin(gateway, "POST", "keys", request), fragment, param)
    assert "bad-admin-create" not in key_names(gateway)


def test_a_key_expiring_after_9999_is_refused_and_listings_keep_working(gateway: Gateway) -> None:
    reply = admin(gateway, "POST", "keys", {"name": "future", "quota_usd": 1, "expires_at": 999999999999})
    assert_400(reply, "9999", "expires_at")
    assert admin(gateway, "GET", "keys/future").status == 404  # nothing was created
    assert "future" not in key_names(gateway)
    assert gateway.cli("keys", "list").returncode == 0


@pytest.mark.parametrize(
    ("body", "fragment", "param"),
    [
        ({"models": 5}, "models", "models"),
        ({"expires_at": "9999999999999999d"}, "9999", "expires_at"),
        ({"expires_at": 999999999999}, "9999", "expires_at"),
        ({"quota_usd": "lots"}, "quota_usd", "quota_usd"),
        ({"rpm": 0}, "rpm", "rpm"),
        ({"tpm": [100]}, "tpm", "tpm"),
        ({"max_parallel": 10**12}, "max_parallel", "max_parallel"),
    ],
)
def test_patch_refuses_unusable_fields(gateway: Gateway, body: dict, fragment: str, param: str) -> None:
    if "patch-target" not in key_names(gateway):
        assert admin(gateway, "POST", "keys", {"name": "patch-target", "quota_usd": 1}).status == 201
    assert_400(admin(gateway, "PATCH", "keys/patch-target", body), fragment, param)
    view = admin(gateway, "GET", "keys/patch-target").json()
    assert view["allowed_models"] is None and view["expires_at"] is None and view["quota_usd"] == 1
    assert view["rpm"] is None and view["tpm"] is None and view["max_parallel"] is None


def test_topup_past_the_largest_amount_is_a_400(gateway: Gateway) -> None:
    created = admin(gateway, "POST", "keys", {"name": "topup-overflow", "quota_usd": "9000000000"})
    assert created.status == 201, created.body
    assert_400(admin(gateway, "POST", "keys/topup-overflow/topup", {"usd": "9000000000"}), "quota")
    assert admin(gateway, "GET", "keys/topup-overflow").json()["quota_usd"] == 9000000000
    assert admin(gateway, "POST", "keys/topup-overflow/topup", {"usd": 1}).status == 200


def test_a_quota_can_never_go_below_what_the_key_used(gateway: Gateway) -> None:
    key = gateway.create_key("below-used", quota_usd="10")
    reply = call(
        "POST",
        f"{gateway.base_url}/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "spend a little"}]},
        {"Authorization": f"Bearer {key}"},
    )
    assert reply.status == 200
    used = wait_until(lambda: admin(gateway, "GET", "keys/below-used").json()["used_usd"])
    assert used > 0
    assert_400(admin(gateway, "POST", "keys/below-used/topup", {"usd": -100}), "cannot be set below", "usd")
    assert_400(admin(gateway, "PATCH", "keys/below-used", {"quota_usd": 0}), "cannot be set below", "quota_usd")
    shown = admin(gateway, "GET", "keys/below-used").json()
    assert shown["quota_usd"] == 10 and shown["balance_usd"] >= 0
    assert admin(gateway, "POST", "keys/below-used/topup", {"usd": -9}).status == 200  # taking back the unused part


@pytest.mark.parametrize(
    ("query", "fragment", "param"),
    [
        ("days=999999999", "days", "days"),
        ("days=0", "days", "days"),
        ("days=-3", "days", "days"),
        ("days=abc", "days", "days"),
        ("days=%C2%B2", "days", "days"),  # "²": str.isdigit() says yes, int() says no
        ("days=" + "9" * 5000, "days", "days"),
        ("until=9999999999999", "9999", "until"),
        ("since=9999999999999", "9999", "since"),
        ("since=2026-02-01&until=2026-01-01", "after its start", None),
    ],
)
def test_usage_query_errors_are_400(gateway: Gateway, query: str, fragment: str, param: str | None) -> None:
    assert_400(admin(gateway, "GET", f"usage?{query}"), fragment, param)


def test_usage_period_bounds_that_work(gateway: Gateway) -> None:
    assert admin(gateway, "GET", "usage?days=36500").status == 200
    assert admin(gateway, "GET", "usage?since=2020-01-01&until=2100-01-01").status == 200


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("keys", "create", "--name", "cli-future", "--quota-usd", "1", "--expires", "9999999999999999d"), "9999"),
        (("keys", "create", "--name", "cli-future", "--quota-usd", "1", "--expires", "999999999999"), "9999"),
        (("keys", "create", "--name", "x" * 201, "--quota-usd", "1"), "200"),
        (("usage", "--days", "999999999"), "days"),
        (("usage", "--until", "9999999999999"), "9999"),
        (("keys", "create", "--name", "cli-rpm", "--quota-usd", "1", "--rpm", "-1"), "--rpm"),
        (("keys", "create", "--name", "cli-tpm", "--quota-usd", "1", "--tpm", "lots"), "--tpm"),
        (("keys", "create", "--name", "cli-par", "--quota-usd", "1", "--max-parallel", "1000000001"), "1,000,000,000"),
        (("keys", "update", "nobody-has-this-name", "--rpm", "2.5"), "--rpm"),
    ],
)
def test_cli_refuses_the_same_values(gateway: Gateway, args: tuple[str, ...], words: str) -> None:
    result = gateway.cli(*args, check=False)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr


def test_one_unrenderable_stored_key_does_not_break_listings(gateway: Gateway) -> None:
    # A row as the unvalidated create once wrote it (and as a database edited by hand may hold): an expiry
    # in the year 33658, which no datetime can show.
    engine = gateway.engine()
    try:
        with engine.begin() as conn:
            plaintext, now = generate_key(), int(time.time())
            row = {"name": "stored-future", "key_hash": hash_key(plaintext), "key_prefix": display_prefix(plaintext)}
            conn.execute(
                insert(api_keys).values(
                    **row,
                    status="active",
                    quota_nano=10**9,
                    used_nano=0,
                    request_count=0,
                    expires_at=999999999999,
                    created_at=now,
                    updated_at=now,
                    revision=next_revision(conn),
                )
            )
            key_id = conn.execute(select(api_keys.c.id).where(api_keys.c.name == "stored-future")).scalar_one()
    finally:
        engine.dispose()
    try:
        listed = admin(gateway, "GET", "keys")
        assert listed.status == 200, listed.body
        broken = next(k for k in listed.json()["data"] if k["id"] == key_id)
        assert broken["name"] == "stored-future" and broken["status"] == "active" and broken["quota_usd"] == 1
        assert broken["expires_at"] == 999999999999  # shown as stored, since no date can show it
        assert broken["unrenderable"] == ["expires_at"]
        assert len(listed.json()["data"]) > 1  # the other keys are all still there
        assert admin(gateway, "GET", f"keys/{key_id}").json()["unrenderable"] == ["expires_at"]
        assert f"key {key_id}" in gateway.log()  # the operator can find the row

        table = gateway.cli("keys", "list")
        line = next(row for row in table.stdout.splitlines() if "stored-future" in row)
        assert "999999999999" in line
        as_json = json.loads(gateway.cli("keys", "list", "--json").stdout)
        assert any(k["id"] == key_id and k["expires_at"] == 999999999999 for k in as_json)
        assert json.loads(gateway.cli("keys", "show", str(key_id)).stdout)["unrenderable"] == ["expires_at"]
        # and the operator can repair or remove it
        patched = admin(gateway, "PATCH", f"keys/{key_id}", {"expires_at": "never"})
        assert patched.status == 200 and "unrenderable" not in patched.json()
    finally:
        gateway.cli("keys", "delete", str(key_id))


# Every field of every admin body, and every usage query parameter, with values of every JSON type and size:
# the answer is a success or a 400, never a 500, and the listings keep working.
HOSTILE = [
    5,
    -1,
    0,
    1.5,
    1e308,
    True,
    None,
    [],
    ["gpt-4o", 5],
    {"a": 1},
    "",
    "x" * 10_000,
    "9" * 5000,
    "9" * 5000 + "d",
    "²",
    "2026-13-45",
    "99999-01-01T00:00:00",
    "-5d",
    999_999_999_999,
    -999_999_999_999,
    2**63,
]


@pytest.mark.parametrize(
    "field", ["name", "quota_usd", "unlimited", "expires_at", "models", "rpm", "tpm", "max_parallel"]
)
def test_create_never_fails_with_a_500(gateway: Gateway, field: str) -> None:
    for index, value in enumerate(HOSTILE):
        name = f"fuzz-{field}-{index}"
        body = {"name": name, "quota_usd": 1, field: value}
        if field == "unlimited":
            body.pop("quota_usd")
        reply = admin(gateway, "POST", "keys", body)
        assert reply.status in (201, 400), (field, value, reply.body)
        if reply.status == 201:
            assert admin(gateway, "DELETE", f"keys/{reply.json()['id']}").status == 200
    assert admin(gateway, "GET", "keys").status == 200


@pytest.mark.parametrize("field", ["expires_at", "models", "quota_usd", "rpm", "tpm", "max_parallel"])
def test_patch_and_topup_never_fail_with_a_500(gateway: Gateway, field: str) -> None:
    name = f"fuzz-patch-{field}"
    assert admin(gateway, "POST", "keys", {"name": name, "quota_usd": 1}).status == 201
    for value in HOSTILE:
        assert admin(gateway, "PATCH", f"keys/{name}", {field: value}).status in (200, 400), (field, value)
        assert admin(gateway, "POST", f"keys/{name}/topup", {"usd": value}).status in (200, 400), value
        assert admin(gateway, "GET", f"keys/{name}").status == 200
    assert admin(gateway, "GET", "keys").status == 200
    assert gateway.cli("keys", "list").returncode == 0


@pytest.mark.parametrize("parameter", ["days", "since", "until", "key"])
def test_usage_query_never_fails_with_a_500(gateway: Gateway, parameter: str) -> None:
    for value in HOSTILE:
        text = quote(value if isinstance(value, str) else json.dumps(value))
        reply = admin(gateway, "GET", f"usage?{parameter}={text}")
        assert reply.status in (200, 400, 404), (parameter, value, reply.body)
