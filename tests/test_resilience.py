"""Client disconnects, SIGTERM under load, and a database that is away at shutdown: nothing is lost."""

from __future__ import annotations

import asyncio
import http.client
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from llmrelay.metering.recorder import UsageRecorder
from llmrelay.store.db import make_engine, migrate
from llmrelay.store.schema import api_keys, usage_records
from llmrelay.store.usage import UsageRecord
from tests.conftest import Gateway, make_gateway, wait_until
from tests.fakes.openai_upstream import FakeOpenAI
from tests.test_billing import record_for


def test_client_disconnect_cancels_upstream_and_bills_what_was_produced(gateway: Gateway, upstream: FakeOpenAI) -> None:
    key = gateway.create_key("disconnecting", quota_usd="1")
    cancelled_before = upstream.state.cancelled_streams
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request(
        "POST",
        "/v1/chat/completions",
        body=b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"#fake:slow go"}]}',
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    request_id = response.getheader("x-request-id")
    received = b""
    while received.count(b"tick") < 5:
        received += response.read1(4096)
    connection.sock.close()  # the client goes away mid-stream
    connection.close()

    assert wait_until(lambda: upstream.state.cancelled_streams > cancelled_before, timeout=5)
    record = wait_until(lambda: record_for(gateway, request_id), timeout=5)
    assert record["status"] == "client_closed"
    assert record["completion_tokens"] >= 5  # at least the ticks the client received
    assert record["cost_nano"] == record["prompt_tokens"] * 2500 + record["completion_tokens"] * 10000
    assert record["cost_nano"] > 0


def load(
    gw: Gateway,
    key: str,
    stop: threading.Event,
    done_ids: list[str],
    errors: list[str],
    upstream_seconds: float = 0.05,
    start: float = 0.0,
) -> None:
    """Sequential requests (non-stream and stream in turn), each taking the upstream `upstream_seconds`, until
    told to stop or the gateway goes away; the ids of completed replies go to `done_ids`. Workers started
    `start` seconds apart finish their requests at different times."""
    time.sleep(start)
    bodies = [
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"#fake:sleep=%g load"}]}' % upstream_seconds,
        b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"#fake:sleep=%g load s"}]}'
        % upstream_seconds,
    ]
    index = 0
    while not stop.is_set():
        try:
            connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            connection.request(
                "POST",
                "/v1/chat/completions",
                body=bodies[index % 2],
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )
            response = connection.getresponse()
            body = response.read()
            connection.close()
        except OSError as exc:
            errors.append(type(exc).__name__)
            time.sleep(0.02)
            continue
        index += 1
        if response.status == 200 and (body.endswith(b"[DONE]\n\n") or body.startswith(b"{")):
            done_ids.append(response.getheader("x-request-id"))


def test_sigterm_under_load_loses_no_usage_record(tmp_path: Path, upstream: FakeOpenAI) -> None:
    gw = make_gateway(tmp_path, upstream).start()
    key = gw.create_key("sigterm-load", quota_usd="100")
    stop = threading.Event()
    done_ids: list[str] = []
    errors: list[str] = []
    workers = [threading.Thread(target=load, args=(gw, key, stop, done_ids, errors)) for _ in range(8)]
    for worker in workers:
        worker.start()
    time.sleep(1.5)
    served_before_signal = len(done_ids)
    exit_code = gw.stop(signal.SIGTERM)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    # uvicorn re-raises the signal after a graceful shutdown, so the exit status is "terminated by SIGTERM".
    assert exit_code in (0, -signal.SIGTERM), gw.log()
    assert "Application shutdown complete" in gw.log()
    assert served_before_signal > 20, "the gateway was under load when the signal came"

    engine = gw.engine()
    with engine.connect() as conn:
        recorded = set(conn.execute(select(usage_records.c.request_id)).scalars())
        cost = conn.execute(select(func.coalesce(func.sum(usage_records.c.cost_nano), 0))).scalar_one()
        used = conn.execute(select(api_keys.c.used_nano).where(api_keys.c.name == "sigterm-load")).scalar_one()
    engine.dispose()
    missing = [request_id for request_id in done_ids if request_id not in recorded]
    assert not missing, f"{len(missing)} served requests have no usage record"
    assert cost == used > 0


def test_records_spilled_when_the_database_is_away_are_replayed(tmp_path: Path) -> None:
    record = UsageRecord(
        request_id="req-spill-1",
        created_ms=int(time.time() * 1000),
        key_id=1,
        endpoint="chat.completions",
        model="gpt-4o",
        upstream_model="gpt-4o",
        channel="c",
        prompt_tokens=10,
        cached_tokens=0,
        completion_tokens=5,
        cost_nano=75_000,
        status="ok",
        http_status=200,
        latency_ms=3,
        stream=False,
        usage_source="upstream",
    )
    spill = tmp_path / "usage-spill.jsonl"

    async def run_db(function, *args):  # type: ignore[no-untyped-def]
        return function(*args)

    async def shut_down_without_schema() -> None:
        # A database with no tables: every write fails, as when the server is gone.
        away = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        recorder = UsageRecorder(away, run_db, spill, flush_seconds=0.05)
        await recorder.start()
        recorder.record(record)
        await recorder.close(attempts=2)

    asyncio.run(shut_down_without_schema())
    assert spill.exists() and b"req-spill-1" in spill.read_bytes()

    engine = make_engine(f"sqlite:///{tmp_path / 'good.db'}")
    migrate(engine)

    async def restart() -> None:
        recorder = UsageRecorder(engine, run_db, spill)
        await recorder.start()
        await recorder.close()

    asyncio.run(restart())
    assert not spill.exists()
    with engine.connect() as conn:
        assert conn.execute(select(usage_records.c.request_id)).scalars().all() == ["req-spill-1"]


@pytest.fixture(autouse=True)
def _quiet_recorder_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL", logger="llmrelay.usage")
