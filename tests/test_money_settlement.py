"""Settlement never charges more than the reservation; what the upstream reports beyond it is recorded as overrun.

The fake OpenAI upstream over-reports with `#fake:tools=N`: it reports 12 completion tokens per tool call
whatever `max_tokens` allowed, so a request reserved for 10 completion tokens can report 600.
"""

from __future__ import annotations

import http.client
import json
import re

import orjson
import pytest

from llmrelay.metering.money import nano_to_usd
from tests.conftest import Gateway, call, wait_until
from tests.fakes.openai_upstream import TOOL_CALL_TOKENS, prompt_tokens_of
from tests.test_billing import key_row, record_for

# gpt-4o-mini list prices in nano-dollars per token.
MINI_IN, MINI_OUT = 150, 600
QUOTA_NANO = 20_000  # $0.00002
CALLS = 50
MAX_TOKENS = 10


def reservation_nano(messages: list[dict[str, str]], max_tokens: int) -> int:
    """The documented reservation: 3 framing tokens per message + 3, the UTF-8 bytes of roles and contents
    as prompt tokens, plus max_tokens, at gpt-4o-mini's prices."""
    prompt_bound = 3 + sum(3 + len(m["role"].encode()) + len(m["content"].encode()) for m in messages)
    return prompt_bound * MINI_IN + max_tokens * MINI_OUT


def reported_nano(messages: list[dict[str, str]]) -> int:
    """What the fake reports for a `#fake:tools=N` reply, at gpt-4o-mini's prices."""
    return prompt_tokens_of(messages) * MINI_IN + CALLS * TOOL_CALL_TOKENS * MINI_OUT


def post_chat(gateway: Gateway, key: str, body: dict) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        connection.request(
            "POST",
            "/v1/chat/completions",
            body=orjson.dumps(body),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, response.getheader("x-request-id") or "", response.read()
    finally:
        connection.close()


def overrun_metric(gateway: Gateway) -> int:
    text = call("GET", f"{gateway.url}/metrics").body.decode()
    match = re.search(r"^llmrelay_overrun_nano_total (\d+)$", text, re.MULTILINE)
    assert match, text
    return int(match.group(1))


@pytest.mark.parametrize("stream", [False, True])
def test_an_over_reporting_upstream_is_charged_at_most_the_reservation(gateway: Gateway, stream: bool) -> None:
    name = f"overrun-{'stream' if stream else 'body'}"
    key = gateway.create_key(name, quota_usd="0.00002")
    messages = [{"role": "user", "content": f"#fake:tools={CALLS} weather please"}]
    reserved = reservation_nano(messages, MAX_TOKENS)
    reported = reported_nano(messages)
    assert reserved <= QUOTA_NANO < reported  # the key affords the reservation, not what the upstream reports
    metric_before = overrun_metric(gateway)

    body = {"model": "gpt-4o-mini", "messages": messages, "max_tokens": MAX_TOKENS, "stream": stream}
    status, request_id, reply = post_chat(gateway, key, body)
    assert status == 200, reply
    if stream:
        assert reply.rstrip().endswith(b"data: [DONE]")
    else:
        assert len(json.loads(reply)["choices"][0]["message"]["tool_calls"]) == CALLS

    record = wait_until(lambda: record_for(gateway, request_id))
    assert record is not None
    assert record["completion_tokens"] == CALLS * TOOL_CALL_TOKENS  # the upstream's own report is kept
    assert record["cost_nano"] == reserved
    assert record["overrun_nano"] == reported - reserved
    row = wait_until(lambda: (r := key_row(gateway, name))["records"] == 1 and r)
    assert row["used_nano"] == row["records_cost"] == reserved
    assert row["quota_nano"] - row["used_nano"] >= 0  # never below zero
    info = call("GET", f"{gateway.base_url}/user/info", headers={"Authorization": key}).json()
    assert info["balance_usd"] >= 0 and info["reserved_usd"] == 0

    assert overrun_metric(gateway) - metric_before >= reported - reserved
    warning = wait_until(lambda: [line for line in gateway.log().splitlines() if request_id in line], timeout=5)
    assert warning, "one warning line names the request"
    line = warning[0]
    assert "WARNING" in line and f"key {row['id']}" in line and "model gpt-4o-mini" in line
    assert f"reported ${nano_to_usd(reported)}" in line and f"reserved ${nano_to_usd(reserved)}" in line


def test_a_request_within_its_reservation_has_no_overrun(gateway: Gateway) -> None:
    key = gateway.create_key("overrun-none", quota_usd="1")
    status, request_id, _ = post_chat(
        gateway, key, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "fits easily"}]}
    )
    assert status == 200
    record = wait_until(lambda: record_for(gateway, request_id))
    assert record["overrun_nano"] == 0 and record["cost_nano"] > 0
