"""Exact billing: costs from known token counts, refunds on failure, no overspend under concurrency,
and the balance endpoints that OpenAI-era clients read."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from sqlalchemy import func, select

from llmrelay.store.schema import api_keys, usage_records
from tests.conftest import Gateway, call, wait_until

NANO = Decimal(10**9)


def record_for(gateway: Gateway, request_id: str) -> dict | None:
    engine = gateway.engine()
    try:
        with engine.connect() as conn:
            row = conn.execute(select(usage_records).where(usage_records.c.request_id == request_id)).first()
            return dict(row._mapping) if row else None
    finally:
        engine.dispose()


def key_row(gateway: Gateway, name: str) -> dict:
    engine = gateway.engine()
    try:
        # One statement, so the key's counters and its records are read at one moment (two SELECTs could
        # straddle a usage batch being written).
        mine = usage_records.c.key_id == api_keys.c.id
        records_cost = select(func.coalesce(func.sum(usage_records.c.cost_nano), 0)).where(mine).scalar_subquery()
        records = select(func.count()).select_from(usage_records).where(mine).scalar_subquery()
        with engine.connect() as conn:
            row = conn.execute(
                select(api_keys, records_cost.label("records_cost"), records.label("records")).where(
                    api_keys.c.name == name, api_keys.c.status != "deleted"
                )
            ).one()
            return {**dict(row._mapping), "records_cost": int(row.records_cost), "records": int(row.records)}
    finally:
        engine.dispose()


def chat_with_id(client: OpenAI, **kwargs: object) -> tuple[object, str]:
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    return raw.parse(), raw.headers["x-request-id"]


@pytest.mark.parametrize(
    ("model", "content", "input_nano", "cached_nano", "output_nano"),
    [
        # Published list prices in USD per 1M tokens, times 1000 = nano-dollars per token.
        ("gpt-4o", "price check one two", 2500, 1250, 10000),
        ("gpt-4o", "#fake:cached=4 cached price check", 2500, 1250, 10000),
        ("gpt-4o-mini", "mini price check", 150, 75, 600),
        ("gpt-3.5-turbo", "old price check", 500, 500, 1500),
        ("alias-mini", "mapped names bill as their target", 150, 75, 600),
    ],
)
def test_cost_is_exact_for_known_token_counts(
    gateway: Gateway, model: str, content: str, input_nano: int, cached_nano: int, output_nano: int
) -> None:
    key = gateway.create_key(f"bill-{model}-{len(content)}", quota_usd="1")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    reply, request_id = chat_with_id(client, model=model, messages=[{"role": "user", "content": content}])
    usage = reply.usage
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    expected = (
        (usage.prompt_tokens - cached) * input_nano + cached * cached_nano + usage.completion_tokens * output_nano
    )
    record = wait_until(lambda: record_for(gateway, request_id))
    assert record is not None
    assert record["cost_nano"] == expected
    assert (record["prompt_tokens"], record["completion_tokens"], record["cached_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        cached,
    )
    assert record["status"] == "ok" and record["usage_source"] == "upstream"
    info = call("GET", f"{gateway.base_url}/user/info", headers={"Authorization": key}).json()
    assert Decimal(str(info["used_usd"])) * NANO == expected
    assert Decimal(str(info["balance_usd"])) * NANO == NANO - expected


def test_per_request_price_for_reverse_models(gateway: Gateway) -> None:
    key = gateway.create_key("bill-gizmo", quota_usd="1")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    reply, request_id = chat_with_id(
        client, model="gpt-4-gizmo-g-abc123", messages=[{"role": "user", "content": "gizmo"}]
    )
    # $10 / $30 per 1M tokens plus $0.01 per call (the test config's glob price).
    expected = reply.usage.prompt_tokens * 10_000 + reply.usage.completion_tokens * 30_000 + 10_000_000
    record = wait_until(lambda: record_for(gateway, request_id))
    assert record["cost_nano"] == expected
    assert record["model"] == "gpt-4-gizmo-g-abc123"


def test_failed_upstream_call_refunds_the_reservation(gateway: Gateway) -> None:
    key = gateway.create_key("bill-refund", quota_usd="1")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "#fake:error=500"}])
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="dead-model", messages=[{"role": "user", "content": "x"}])
    info = call("GET", f"{gateway.base_url}/user/info", headers={"Authorization": key}).json()
    assert info["used_usd"] == 0 and info["reserved_usd"] == 0 and info["balance_usd"] == 1
    row = wait_until(lambda: (r := key_row(gateway, "bill-refund"))["records"] == 2 and r)
    assert row["used_nano"] == 0 and row["records_cost"] == 0


def test_tokenizer_bills_when_the_upstream_reports_no_usage(gateway: Gateway) -> None:
    import bpe_openai

    key = gateway.create_key("bill-tokenizer", quota_usd="1")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    reply, request_id = chat_with_id(
        client, model="gpt-4o", messages=[{"role": "user", "content": "#fake:nousage count these words"}]
    )
    assert reply.usage is None
    completion = len(bpe_openai.get_encoding("o200k_base").encode(reply.choices[0].message.content))
    record = wait_until(lambda: record_for(gateway, request_id))
    assert record["usage_source"] == "tokenizer"
    assert record["completion_tokens"] == completion
    assert record["prompt_tokens"] > 0
    assert record["cost_nano"] == record["prompt_tokens"] * 2500 + completion * 10000


def test_fifty_concurrent_requests_never_overspend(gateway: Gateway) -> None:
    # Each request reserves its prompt estimate + max_tokens=200 of gpt-4o output (≈ $0.002);
    # the key holds enough for about ten such reservations.
    quota = "0.021"
    key = gateway.create_key("bill-concurrent", quota_usd=quota)

    async def fire() -> list[object]:
        async with AsyncOpenAI(api_key=key, base_url=gateway.base_url, max_retries=0) as client:
            return await asyncio.gather(
                *[
                    client.chat.completions.create(
                        model="gpt-4o",
                        messages=[{"role": "user", "content": f"#fake:sleep=0.3 concurrent {i}"}],
                        max_tokens=200,
                    )
                    for i in range(50)
                ],
                return_exceptions=True,
            )

    results = asyncio.run(fire())
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(ok) + len(refused) == 50, [r for r in results if isinstance(r, Exception)][:3]
    assert len(ok) >= 10 and refused, (len(ok), len(refused))
    assert all(r.code == "insufficient_quota" for r in refused)
    spent = sum(r.usage.prompt_tokens * 2500 + r.usage.completion_tokens * 10000 for r in ok)

    row = wait_until(lambda: (r := key_row(gateway, "bill-concurrent"))["records"] == len(ok) and r)
    assert row, "every successful request has a usage record"
    assert row["used_nano"] == row["records_cost"] == spent
    assert row["quota_nano"] - row["used_nano"] >= 0
    info = call("GET", f"{gateway.base_url}/user/info", headers={"Authorization": key}).json()
    assert Decimal(str(info["balance_usd"])) >= 0
    assert info["reserved_usd"] == 0


def test_billing_endpoints_report_limit_usage_and_balance(gateway: Gateway) -> None:
    key = gateway.create_key("bill-dashboard", "--expires", "2099-01-01", quota_usd="5")
    client = OpenAI(api_key=key, base_url=gateway.base_url, max_retries=0)
    for model in ("gpt-4o", "gpt-4o-mini"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "dashboard"}])
    auth = {"Authorization": f"Bearer {key}"}
    subscription = call("GET", f"{gateway.base_url}/dashboard/billing/subscription", headers=auth).json()
    assert subscription["object"] == "billing_subscription"
    assert subscription["hard_limit_usd"] == 5
    assert subscription["access_until"] == int(datetime(2099, 1, 1, tzinfo=UTC).timestamp())

    info = call("GET", f"{gateway.base_url}/user/info", headers=auth).json()
    used_cents = Decimal(str(info["used_usd"])) * 100
    assert info["name"] == "bill-dashboard" and info["request_count"] == 2
    assert info["limits"]["requests_per_minute"] is None and info["limits"]["tokens_per_minute"] is None
    assert info["limits"]["max_parallel_requests"] is None  # a key without rate limits
    assert Decimal(str(info["balance_usd"])) == 5 - Decimal(str(info["used_usd"]))

    today = datetime.now(UTC).date()
    window = f"start_date={today - timedelta(days=99)}&end_date={today + timedelta(days=1)}"
    usage = call("GET", f"{gateway.base_url}/dashboard/billing/usage?{window}", headers=auth).json()
    assert Decimal(str(usage["total_usage"])) == used_cents
    line_items = {i["name"]: Decimal(str(i["cost"])) for d in usage["daily_costs"] for i in d["line_items"]}
    assert set(line_items) == {"gpt-4o", "gpt-4o-mini"}
    assert sum(line_items.values()) == used_cents

    past = "start_date=2020-01-01&end_date=2020-02-01"
    assert call("GET", f"{gateway.base_url}/dashboard/billing/usage?{past}", headers=auth).json()["total_usage"] == 0
    everything = call("GET", f"{gateway.base_url}/dashboard/billing/usage", headers=auth).json()
    assert Decimal(str(everything["total_usage"])) == used_cents
    bad = call("GET", f"{gateway.base_url}/dashboard/billing/usage?start_date=yesterday", headers=auth)
    assert bad.status == 400 and bad.json()["error"]["param"] == "start_date"
