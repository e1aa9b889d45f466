"""Requests cut off before their reply was complete are billed as documented, and no signal loses usage:

- a stream cut by the graceful-shutdown limit bills what it delivered and ends with an error event;
- a non-stream request whose client gives up cancels the upstream call and bills the prompt (client_closed);
- a double Ctrl-C under load still writes every served request's usage record.
"""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time
from pathlib import Path

import bpe_openai
import orjson
import pytest
from aiohttp import web
from sqlalchemy import func, select

from llmrelay.store.schema import api_keys, usage_records
from tests.conftest import Gateway, make_gateway, wait_until
from tests.fakes.openai_upstream import FakeOpenAI
from tests.test_billing import key_row, record_for
from tests.test_resilience import load

GPT_4O_IN, GPT_4O_OUT = 2500, 10_000  # nano-dollars per token
O200K = bpe_openai.get_encoding("o200k_base")


def records_of(gateway: Gateway, key_name: str) -> list[dict]:
    engine = gateway.engine()
    try:
        with engine.connect() as conn:
            query = (
                select(usage_records)
                .join(api_keys, api_keys.c.id == usage_records.c.key_id)
                .where(api_keys.c.name == key_name)
            )
            return [dict(row._mapping) for row in conn.execute(query)]
    finally:
        engine.dispose()


def openai_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """OpenAI's published framing: 3 tokens per message, its role and content tokens, 3 to prime the reply."""
    return 3 + sum(3 + len(O200K.encode(m["role"])) + len(O200K.encode(m["content"])) for m in messages)


# ------------------------------------------------------------------------ 3. a stream cut at the shutdown limit


def test_a_stream_cut_by_the_shutdown_limit_bills_what_was_delivered(tmp_path: Path, upstream: FakeOpenAI) -> None:
    gw = make_gateway(tmp_path, upstream)
    gw.env["LLMRELAY_GRACEFUL_TIMEOUT"] = "1"
    gw.start()
    key = gw.create_key("graceful-cut", quota_usd="1")
    messages = [{"role": "user", "content": "#fake:slow go"}]
    connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    connection.request(
        "POST",
        "/v1/chat/completions",
        body=orjson.dumps({"model": "gpt-4o", "stream": True, "messages": messages}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    assert response.status == 200
    request_id = response.getheader("x-request-id")
    received = b""
    while received.count(b"tick") < 5:
        received += response.read1(4096)

    assert gw.process is not None
    gw.process.send_signal(signal.SIGTERM)  # the stream runs 10 s; the gateway gives it 1 s
    received += response.read()  # to the end of the response: the gateway ends it
    connection.close()
    assert gw.process.wait(timeout=30) in (0, -signal.SIGTERM), gw.log()

    events = [line for line in received.split(b"\n\n") if line.startswith(b"data: ")]
    last = orjson.loads(events[-1][len(b"data: ") :])
    assert last["error"]["code"] == "shutting_down", events[-3:]
    assert b"[DONE]" not in received
    ticks = received.count(b"tick")

    record = record_for(gw, request_id)
    assert record is not None, gw.log()
    assert (record["status"], record["http_status"], record["usage_source"]) == ("cancelled", 499, "tokenizer")
    assert record["completion_tokens"] >= ticks >= 5
    assert record["prompt_tokens"] == openai_prompt_tokens(messages)
    cost = record["prompt_tokens"] * GPT_4O_IN + record["completion_tokens"] * GPT_4O_OUT
    assert record["cost_nano"] == cost > 0
    row = key_row(gw, "graceful-cut")
    assert row["used_nano"] == row["records_cost"] == cost


def test_the_graceful_timeout_must_be_a_positive_number(tmp_path: Path, upstream: FakeOpenAI) -> None:
    gw = make_gateway(tmp_path, upstream)
    gw.env["LLMRELAY_GRACEFUL_TIMEOUT"] = "soon"
    result = gw.cli("serve", check=False)
    assert result.returncode == 2 and "graceful shutdown timeout" in result.stderr


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "claude-sonnet-4-5", "stream": True}),  # translated for Claude
        ("/v1/messages", {"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 2000}),  # Claude's own API
    ],
)
def test_a_cut_claude_stream_bills_what_was_delivered(gateway: Gateway, path: str, body: dict) -> None:
    # Claude reports the input in message_start (with output_tokens 1) and the output only at the end: a stream
    # cut before the end is billed for what it delivered, counted offline, not for the 1 token announced.
    name = f"claude-cut-{path.rsplit('/', 1)[-1]}"
    key = gateway.create_key(name, quota_usd="1")
    messages = [{"role": "user", "content": "#fake:slow go"}]
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request(
        "POST",
        path,
        body=orjson.dumps({**body, "messages": messages}),
        headers={
            "Authorization": f"Bearer {key}",
            "anthropic-version": "2023-06-01",
            "Content-Type": "application/json",
        },
    )
    response = connection.getresponse()
    assert response.status == 200
    request_id = response.getheader("x-request-id")
    received = b""
    while received.count(b"tick") < 10:
        received += response.read1(4096)
    connection.sock.close()  # the client goes away mid-stream
    connection.close()

    record = wait_until(lambda: record_for(gateway, request_id), timeout=10)
    assert record is not None and record["status"] == "client_closed"
    assert record["completion_tokens"] >= received.count(b"tick") >= 10
    assert record["prompt_tokens"] > 0
    assert record["cost_nano"] == record["prompt_tokens"] * 3000 + record["completion_tokens"] * 15_000


# ------------------------------------------------------------------- 4. a non-stream client that gives up


class WatchingFake(FakeOpenAI):
    """The fake OpenAI upstream, noting for each chat request whether its connection was gone by the time
    its reply was ready (the gateway cancelled the call)."""

    def __init__(self) -> None:
        super().__init__()
        self.ended_early: list[bool] = []

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            return await super().chat(request)
        finally:
            transport = request.transport
            self.ended_early.append(transport is None or transport.is_closing())


@pytest.fixture(scope="module")
def watching() -> FakeOpenAI:
    fake = WatchingFake().start()
    yield fake
    fake.stop()


def test_a_client_that_gives_up_cancels_the_upstream_call_and_pays_the_prompt(
    tmp_path: Path, watching: WatchingFake
) -> None:
    gw = make_gateway(tmp_path, watching).start()
    try:
        key = gw.create_key("gives-up", quota_usd="1")
        messages = [{"role": "user", "content": "#fake:sleep=2 take your time, please"}]
        connection = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=0.3)
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=orjson.dumps({"model": "gpt-4o", "messages": messages}),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with pytest.raises((TimeoutError, socket.timeout)):
            connection.getresponse()
        connection.close()  # the client gives up after 0.3 s

        records = wait_until(lambda: records_of(gw, "gives-up"), timeout=10)
        assert len(records) == 1, gw.log()
        record = records[0]
        assert (record["status"], record["http_status"]) == ("client_closed", 499)
        # The documented charge: the prompt, counted offline (the upstream has read it), and no completion.
        assert record["usage_source"] == "tokenizer" and record["completion_tokens"] == 0
        assert record["prompt_tokens"] == openai_prompt_tokens(messages)
        assert record["cost_nano"] == record["prompt_tokens"] * GPT_4O_IN
        row = wait_until(lambda: (r := key_row(gw, "gives-up"))["used_nano"] and r)
        assert row["used_nano"] == record["cost_nano"]
        # The upstream saw its request end before it answered.
        assert wait_until(lambda: watching.ended_early, timeout=10) == [True]
    finally:
        gw.stop()


# ----------------------------------------------------------------------- 5. a double Ctrl-C under load


def test_a_double_ctrl_c_under_load_loses_no_usage_record(tmp_path: Path, upstream: FakeOpenAI) -> None:
    gw = make_gateway(tmp_path, upstream).start()
    key = gw.create_key("double-sigint", quota_usd="100")
    stop = threading.Event()
    done_ids: list[str] = []
    # Requests that take the upstream 0.5 s, so that many are still finishing while the gateway waits for them
    # at shutdown (their records are queued when the second Ctrl-C comes).
    workers = [threading.Thread(target=load, args=(gw, key, stop, done_ids, [], 0.5, i * 0.04)) for i in range(12)]
    for worker in workers:
        worker.start()
    # Under load: some requests served, more in flight (waited for, not slept for: a busy box serves slower).
    wait_until(lambda: len(done_ids) > 20, timeout=30)
    served_before_signal = len(done_ids)
    assert gw.process is not None
    gw.process.send_signal(signal.SIGINT)
    time.sleep(0.25)  # the gateway is waiting for the requests in flight, which keep finishing
    gw.process.send_signal(signal.SIGINT)  # the impatient second Ctrl-C
    gw.process.wait(timeout=60)
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    assert served_before_signal > 20, "the gateway was under load when the signals came"
    log = gw.log()

    gw.start()  # a spill file, if the database was away, is written back on start
    gw.stop()
    engine = gw.engine()
    with engine.connect() as conn:
        recorded = set(conn.execute(select(usage_records.c.request_id)).scalars())
        cost = conn.execute(select(func.coalesce(func.sum(usage_records.c.cost_nano), 0))).scalar_one()
        used = conn.execute(select(api_keys.c.used_nano).where(api_keys.c.name == "double-sigint")).scalar_one()
    engine.dispose()
    missing = [request_id for request_id in done_ids if request_id not in recorded]
    assert not missing, f"{len(missing)} of {len(done_ids)} served requests have no usage record\n{log[-3000:]}"
    assert cost == used > 0
