"""What a key holder reads about their own balance, in the shapes OpenAI-era clients expect.

- GET /v1/dashboard/billing/subscription: hard_limit_usd is the key's total quota;
- GET /v1/dashboard/billing/usage: total_usage in cents for [start_date, end_date);
- GET /v1/user/info: llmrelay's own, complete view of the key.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from llmrelay.metering.money import nano_to_usd
from llmrelay.operations import cents, day_start
from llmrelay.relay.auth import authenticate
from llmrelay.relay.errors import bad_request
from llmrelay.relay.limits import NO_LIMITS, KeyLimits
from llmrelay.store.keys import KeyOperationError
from llmrelay.store.usage import daily_costs
from llmrelay.surfaces.http import HttpRequest

if TYPE_CHECKING:
    from llmrelay.app import Gateway

# What clients are shown as the limit of an unlimited key (they need a number).
UNLIMITED_USD = 100_000_000


async def subscription(gw: Gateway, http: HttpRequest) -> None:
    key = authenticate(gw.keys, http)
    limit: Any = nano_to_usd(key.quota_nano) if key.quota_nano is not None else UNLIMITED_USD
    await http.respond_json(
        200,
        {
            "object": "billing_subscription",
            "has_payment_method": True,
            "canceled": False,
            "canceled_at": None,
            "delinquent": None,
            "access_until": key.expires_at or 0,
            "soft_limit_usd": limit,
            "hard_limit_usd": limit,
            "system_hard_limit_usd": limit,
            "plan": {"title": "llmrelay API key", "id": "llmrelay"},
            "account_name": key.name,
        },
    )


async def usage(gw: Gateway, http: HttpRequest) -> None:
    key = authenticate(gw.keys, http)
    query = http.query()
    start, end = query.get("start_date"), query.get("end_date")
    if start is None and end is None:  # no period: everything the key has spent
        await http.respond_json(200, {"object": "list", "daily_costs": [], "total_usage": cents(key.used_nano)})
        return
    try:
        since = day_start(start, "start_date") if start else 0
        until = day_start(end, "end_date") if end else int(time.time()) + 86400
    except KeyOperationError as exc:
        raise bad_request(str(exc), "start_date" if "start" in str(exc) else "end_date") from None
    if until <= since:
        raise bad_request("end_date must be after start_date.", "end_date")
    rows = await gw.run_db(daily_costs, gw.engine, key.id, since * 1000, until * 1000)
    totals: dict[tuple[int, str], int] = {(day, model): cost for day, model, cost in rows}
    for record in gw.recorder.pending():
        if record.key_id == key.id and since * 1000 <= record.created_ms < until * 1000:
            slot = (record.created_ms // 86_400_000 * 86_400, record.model)
            totals[slot] = totals.get(slot, 0) + record.cost_nano
    days: dict[int, list[dict[str, Any]]] = {}
    for (day, model), cost in sorted(totals.items()):
        days.setdefault(day, []).append({"name": model, "cost": cents(cost)})
    await http.respond_json(
        200,
        {
            "object": "list",
            "daily_costs": [{"timestamp": day, "line_items": items} for day, items in days.items()],
            "total_usage": cents(sum(totals.values())),
        },
    )


def rate_limits(limits: KeyLimits | None) -> dict[str, int | None]:
    """A key's rate limits under the names user_info has always shown (null: no limit)."""
    limits = limits or NO_LIMITS
    return {
        "requests_per_minute": limits.rpm,
        "tokens_per_minute": limits.tpm,
        "max_parallel_requests": limits.max_parallel,
    }


async def user_info(gw: Gateway, http: HttpRequest) -> None:
    key = authenticate(gw.keys, http)
    quota = key.quota_nano
    await http.respond_json(
        200,
        {
            "object": "user_info",
            "name": key.name,
            "key_prefix": key.key_prefix,
            "status": key.status,
            "unlimited": quota is None,
            "quota_usd": nano_to_usd(quota) if quota is not None else None,
            "balance_usd": nano_to_usd(quota - key.used_nano) if quota is not None else None,
            "used_usd": nano_to_usd(key.used_nano),
            "reserved_usd": nano_to_usd(key.reserved_nano),
            "request_count": key.request_count,
            "allowed_models": list(key.allowed_names) if key.allowed_names else None,
            "expires_at": key.expires_at,
            "created_at": key.created_at,
            "limits": {"max_body_bytes": gw.config.max_body_bytes, **rate_limits(key.limits)},
        },
    )
