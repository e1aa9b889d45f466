"""What operators watch: the access log line, /metrics and /health; and that keys never reach the logs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from openai import OpenAI

from tests.conftest import Gateway, Reply, call, make_gateway, wait_until
from tests.fakes.openai_upstream import UPSTREAM_SECRET, FakeOpenAI


def test_access_log_metrics_and_health(tmp_path: Path, upstream: FakeOpenAI) -> None:
    gw = make_gateway(tmp_path, upstream, extra="server: {access_log: true}").start()
    try:
        key = gw.create_key("observed")
        client = OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "log me"}]
        )
        request_id = raw.headers["x-request-id"]
        assert call("GET", f"{gw.url}/health").json() == {"status": "ok"}

        metrics = call("GET", f"{gw.url}/metrics").body.decode()
        assert 'llmrelay_requests_total{status="200"}' in metrics
        count = next(line for line in metrics.splitlines() if line.startswith("llmrelay_overhead_milliseconds_count"))
        assert int(count.split()[-1]) >= 2
    finally:
        gw.stop()
    lines = [json.loads(line.split(": ", 1)[1]) for line in gw.log().splitlines() if "llmrelay.access:" in line]
    logged = next(entry for entry in lines if entry["id"] == request_id)
    assert logged["path"] == "/v1/chat/completions" and logged["status"] == 200
    assert logged["overhead_ms"] >= 0
    log = gw.log()
    assert key not in log and UPSTREAM_SECRET not in log


def test_metrics_count_errors_by_status(gateway: Gateway) -> None:
    call("GET", f"{gateway.base_url}/models")  # no key: 401
    metrics = call("GET", f"{gateway.url}/metrics").body.decode()
    assert 'llmrelay_requests_total{status="401"}' in metrics


def test_two_workers_start_on_a_fresh_database(tmp_path: Path, upstream: FakeOpenAI) -> None:
    gw = make_gateway(tmp_path, upstream, extra="server: {workers: 2}").start()
    try:
        key = gw.create_key("two-workers")
        auth = {"Authorization": key}

        def info_by_worker() -> dict[str, Reply]:
            # Ask concurrently so that both workers answer; the request id's prefix tells which one did.
            with ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(lambda _: call("GET", f"{gw.base_url}/user/info", headers=auth), range(32)))
            return {r.headers["x-request-id"][:12]: r for r in replies}

        def both_workers_know_the_key() -> bool:
            seen = info_by_worker()
            return len(seen) == 2 and all(r.status == 200 for r in seen.values())

        assert wait_until(both_workers_know_the_key, timeout=6)
        client = OpenAI(api_key=key, base_url=gw.base_url, max_retries=0)
        replies = [
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"w {i}"}])
            for i in range(6)
        ]
        assert all(r.choices[0].message.content for r in replies)
        spent = sum(r.usage.prompt_tokens * 150 + r.usage.completion_tokens * 600 for r in replies)

        def every_worker_sees_the_spend() -> bool:
            seen = info_by_worker()
            used = {Decimal(str(r.json()["used_usd"])) * 10**9 for r in seen.values()}
            return len(seen) == 2 and used == {spent}

        assert wait_until(every_worker_sees_the_spend, timeout=6)
    finally:
        assert gw.stop() in (0, -15)
    assert "startup failed" not in gw.log()
