"""The operator's JSON API under /admin/, guarded by LLMRELAY_ADMIN_KEY (sent as a Bearer token).

It offers what the CLI offers, through the same functions, and applies each change to this node's key
cache at once (other nodes see it at their next poll).
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
from typing import TYPE_CHECKING, Any

from llmrelay import operations
from llmrelay.relay.auth import presented_key
from llmrelay.relay.errors import RelayError, bad_request
from llmrelay.relay.probe import probe_channel
from llmrelay.store import channels as channel_store
from llmrelay.store import keys as key_store
from llmrelay.store.keys import KeyOperationError
from llmrelay.surfaces.http import HttpRequest, parse_json_body

if TYPE_CHECKING:
    from llmrelay.app import Gateway


def _require_admin(gw: Gateway, http: HttpRequest) -> None:
    expected = gw.config.admin_key
    if not expected:
        raise RelayError(
            403, "The admin API is off: set LLMRELAY_ADMIN_KEY to turn it on.", "permission_error", "admin_disabled"
        )
    presented = presented_key(http) or ""
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise RelayError(401, "A valid admin key is required.", "invalid_request_error", "invalid_admin_key")


async def _body(gw: Gateway, http: HttpRequest) -> dict[str, Any]:
    raw = await http.body(gw.config.max_body_bytes)
    if not raw:
        return {}
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


async def _live_spend(gw: Gateway, ref: str) -> int:
    """What this gateway knows a key has spent, including spend not yet written and reservations in flight
    (a quota set below it would leave the key's balance negative)."""
    record = await gw.run_db(key_store.get_key, gw.engine, ref)
    live = gw.keys.by_id.get(record.id)
    return live.used_nano + live.reserved_nano if live is not None else record.used_nano


async def _key_json(gw: Gateway, record: key_store.KeyRecord) -> dict[str, Any]:
    await gw.refresh_keys()
    return operations.key_view(record, gw.keys.by_id.get(record.id))


async def handle(gw: Gateway, http: HttpRequest, rest: str) -> None:
    """Dispatch /admin/<rest>; operator mistakes become 400/404 with the reason."""
    _require_admin(gw, http)
    parts = [p for p in rest.split("/") if p]
    try:
        await _dispatch(gw, http, http.method, parts)
    except KeyOperationError as exc:
        status = 404 if str(exc).startswith("no key") else 400
        raise RelayError(
            status, str(exc), "invalid_request_error", "not_found" if status == 404 else None, exc.param
        ) from None


async def _dispatch(gw: Gateway, http: HttpRequest, method: str, parts: list[str]) -> None:
    run = gw.run_db
    engine = gw.engine
    if parts == ["keys"] and method == "GET":
        records = await run(key_store.list_keys, engine)
        await http.respond_json(
            200, {"object": "list", "data": [operations.key_view(r, gw.keys.by_id.get(r.id)) for r in records]}
        )
    elif parts == ["keys"] and method == "POST":
        body = await _body(gw, http)
        # Passed as sent: create_key checks every field's type and range before anything is written.
        limits = {name: body.get(name) for name in key_store.LIMITS}
        record, plaintext = await run(
            functools.partial(operations.create_key, **limits),
            engine,
            body.get("name", ""),
            body.get("quota_usd"),
            body.get("unlimited", False),
            body.get("expires_at"),
            body.get("models"),
        )
        await http.respond_json(201, {**await _key_json(gw, record), "key": plaintext})
    elif len(parts) == 2 and parts[0] == "keys" and method == "GET":
        record = await run(key_store.get_key, engine, parts[1])
        await http.respond_json(200, operations.key_view(record, gw.keys.by_id.get(record.id)))
    elif len(parts) == 2 and parts[0] == "keys" and method == "PATCH":
        body = await _body(gw, http)
        changes: dict[str, Any] = {}
        if "expires_at" in body:
            changes["expires_at"] = operations.parse_when(body["expires_at"], param="expires_at")
        if "models" in body:
            changes["allowed_models"] = operations.parse_models(body["models"])
        if "quota_usd" in body:
            changes["quota_nano"] = operations.parse_usd(body["quota_usd"], "quota_usd", param="quota_usd")
        for name in key_store.LIMITS:
            if name in body:  # null removes the limit
                changes[name] = operations.parse_limit(body[name], name)
        spent = await _live_spend(gw, parts[1])
        record = await run(lambda: key_store.update_key(engine, parts[1], **changes, spent_nano=spent))
        await http.respond_json(200, await _key_json(gw, record))
    elif len(parts) == 2 and parts[0] == "keys" and method == "DELETE":
        record = await run(key_store.set_status, engine, parts[1], "deleted")
        await gw.refresh_keys()
        await http.respond_json(200, {"id": record.id, "name": record.name, "deleted": True})
    elif len(parts) == 3 and parts[0] == "keys" and method == "POST" and parts[2] in ("disable", "enable"):
        status = "disabled" if parts[2] == "disable" else "active"
        record = await run(key_store.set_status, engine, parts[1], status)
        await http.respond_json(200, await _key_json(gw, record))
    elif len(parts) == 3 and parts[0] == "keys" and method == "POST" and parts[2] == "topup":
        body = await _body(gw, http)
        if "usd" not in body:
            raise bad_request('send {"usd": amount}', "usd")
        amount = operations.parse_usd(body["usd"], "usd", allow_negative=True, param="usd")
        record = await run(key_store.top_up, engine, parts[1], amount, await _live_spend(gw, parts[1]))
        await http.respond_json(200, await _key_json(gw, record))
    elif parts == ["usage"] and method == "GET":
        query = http.query()
        period = operations.parse_period(query.get("since"), query.get("until"), query.get("days"))
        key_id = None
        if query.get("key"):
            key_id = (await run(key_store.get_key, engine, query["key"])).id
        report = await run(operations.usage_report, engine, period, key_id, gw.recorder.pending())
        await http.respond_json(200, report)
    elif parts and parts[0] == "channels":
        await _channels(gw, http, method, parts[1:])
    else:
        raise _no_endpoint(method, parts)


def _no_endpoint(method: str, parts: list[str]) -> RelayError:
    return RelayError(
        404, f"No admin endpoint {method} /admin/{'/'.join(parts)}.", "invalid_request_error", "not_found"
    )


async def _channels(gw: Gateway, http: HttpRequest, method: str, rest: list[str]) -> None:
    """GET /admin/channels; POST /admin/channels/{name}/test|enable|disable (this node at once, the others
    through the database within their poll interval)."""
    configs = gw.config.channels
    if not rest and method == "GET":
        live = {name: channel.health.view() for name, channel in gw.monitor.channels.items()}
        views = operations.channel_views(configs, live)
        await http.respond_json(200, {"object": "list", "data": views})
        return
    if len(rest) != 2 or method != "POST" or rest[1] not in ("test", "enable", "disable"):
        raise _no_endpoint(method, ["channels", *rest])
    name, action = rest
    channel = gw.monitor.channels.get(name)
    if channel is None:
        raise RelayError(404, f"No channel named {name!r}.", "invalid_request_error", "not_found", "name")
    if action == "test":
        result = await probe_channel(channel)
        await http.respond_json(200, {"object": "channel.test", **dataclasses.asdict(result)})
        return
    reason = None
    if action == "disable":
        reason = (await _body(gw, http)).get("reason")
        if reason is not None and not isinstance(reason, str):
            raise bad_request("'reason' must be a string", "reason")
    command = await gw.run_db(channel_store.record_command, gw.engine, name, action == "enable", reason)
    gw.monitor.apply(command)
    live = {name: channel.health.view()}
    await http.respond_json(200, operations.channel_views([c for c in configs if c.name == name], live)[0])
