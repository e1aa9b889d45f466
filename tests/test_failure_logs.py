"""What the operator's log says when an upstream fails: one WARNING line per failed attempt, naming the
channel, the model, the status or error, and a hint where one is known; never a secret. Also as JSON lines
(`LLMRELAY_LOG_FORMAT=json`)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from openai import OpenAI

from tests.conftest import Gateway, free_port, make_gateway
from tests.fakes.openai_upstream import UPSTREAM_SECRET, FakeOpenAI

WRONG_KEY = "sk-wrong-key-for-the-log-test-000"


@pytest.fixture(scope="module", params=["text", "json"])
def logged(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI
) -> Iterator[Gateway]:
    gw = make_gateway(tmp_path_factory.mktemp(f"logs-{request.param}"), upstream)
    root = upstream.base_url.removesuffix("/v1")
    gw.config_path.write_text(
        f"""
channels:
  - {{name: no-v1, type: openai, base_url: "{root}", api_key: "${{FAKE_UPSTREAM_KEY}}", models: [gpt-4o]}}
  - {{name: bad-key, type: openai, base_url: "{upstream.base_url}", api_key: {WRONG_KEY}, models: [gpt-4o-mini]}}
  - {{name: down, type: openai, base_url: "http://127.0.0.1:{free_port()}/v1", api_key: x, models: [gpt-3.5-turbo]}}
"""
    )
    gw.env["LLMRELAY_LOG_FORMAT"] = request.param
    gw.start()
    yield gw
    gw.stop()


def warnings(gateway: Gateway) -> list[str]:
    """The gateway's WARNING lines (their messages, for JSON lines)."""
    lines = gateway.log().splitlines()
    if gateway.env["LLMRELAY_LOG_FORMAT"] == "json":
        records = [json.loads(line) for line in lines if line.startswith("{")]
        assert records and all({"ts", "level", "logger", "message"} <= set(r) for r in records)
        return [r["message"] for r in records if r["level"] == "WARNING"]
    return [line for line in lines if " WARNING " in line]


def attempt(gateway: Gateway, model: str) -> openai.APIStatusError:
    client = OpenAI(api_key=gateway.create_key(f"logs-{model}"), base_url=gateway.base_url, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    return caught.value


def test_a_base_url_without_v1_is_logged_with_the_hint(logged: Gateway) -> None:
    error = attempt(logged, "gpt-4o")
    assert error.status_code == 404
    [line] = [w for w in warnings(logged) if "no-v1" in w]
    assert "channel no-v1 refused model gpt-4o (HTTP 404: 404: Not Found) (is base_url missing /v1?)" in line


def test_a_refused_key_is_logged_with_the_hint_and_the_channel_disabled(logged: Gateway) -> None:
    error = attempt(logged, "gpt-4o-mini")
    assert error.status_code == 502
    [line] = [w for w in warnings(logged) if "bad-key" in w]
    assert "attempt 1 for model gpt-4o-mini on channel bad-key failed (HTTP 401:" in line
    assert "(check the channel's api_key); channel disabled; no channel left to try" in line
    assert WRONG_KEY not in logged.log() and UPSTREAM_SECRET not in logged.log()


def test_an_unreachable_upstream_is_logged_with_where_it_was_looked_for(logged: Gateway) -> None:
    error = attempt(logged, "gpt-3.5-turbo")
    assert error.status_code == 502
    [line] = [w for w in warnings(logged) if "channel down" in w]
    assert "failed (unreachable: cannot connect to 127.0.0.1:" in line
    assert "(is the upstream up at http://127.0.0.1:" in line


def test_json_lines_replace_text_lines_entirely(logged: Gateway) -> None:
    if logged.env["LLMRELAY_LOG_FORMAT"] != "json":
        assert "llmrelay ready" in logged.log()
        return
    lines = [line for line in logged.log().splitlines() if line.strip()]
    ready = [json.loads(line) for line in lines if "llmrelay ready" in line]
    assert ready and ready[0]["logger"] == "llmrelay"
    uvicorn = [line for line in lines if "Started server process" in line]
    assert uvicorn and all(json.loads(line)["logger"].startswith("uvicorn") for line in uvicorn)
    stray = [line for line in lines if not line.startswith("{") and not line.startswith("llmrelay: database")]
    assert stray == []
