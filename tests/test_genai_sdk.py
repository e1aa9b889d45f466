"""The google-genai SDK through the gateway's Gemini API (v1beta and v1): forwarded untouched to a Gemini
channel, translated both ways for an OpenAI and a Claude model; Google-shaped errors from the gateway
itself; exact bills."""

from __future__ import annotations

import base64
import json

import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import Gateway, call, wait_until
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI, png_bytes
from tests.test_billing import key_row, record_for

GEMINI = "gemini-2.0-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather in a city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
NO_AUTO_CALLS = types.AutomaticFunctionCallingConfig(disable=True)


def client_for(gateway: Gateway, key: str, version: str = "v1beta", seen: list[str] | None = None) -> genai.Client:
    hooks = (
        {"event_hooks": {"response": [lambda r: seen.append(r.headers["x-request-id"])]}} if seen is not None else {}
    )
    options = types.HttpOptions(base_url=gateway.url, api_version=version, client_args=hooks)
    return genai.Client(api_key=key, http_options=options)


@pytest.fixture(scope="module")
def gem(gateway: Gateway, key: str) -> genai.Client:
    return client_for(gateway, key)


# ------------------------------------------------------------------------------------ to a Gemini channel


@pytest.mark.parametrize("version", ["v1beta", "v1"])
def test_passthrough_forwards_the_body_to_the_channels_version(
    gateway, key, gemini_upstream: FakeGemini, version
) -> None:
    marker = f"genai-pass-{version}"
    client = client_for(gateway, key, version)
    reply = client.models.generate_content(
        model=GEMINI, contents=f"hello {marker}", config=types.GenerateContentConfig(temperature=0.3)
    )
    assert reply.text == f"You said: hello {marker}"
    received = gemini_upstream.requests_with(marker)[-1]
    assert received.path == f"/v1beta/models/{GEMINI}:generateContent"  # the channel's version, whatever the client's
    assert received.json["generationConfig"] == {"temperature": 0.3}


def test_passthrough_bytes_are_untouched_and_a_mapped_model_changes_only_the_url(gateway, key, gemini_upstream) -> None:
    raw = (
        b'{"contents": [{"role": "user", "parts": [{"text": "exact  genai-bytes"}]}],  "generationConfig": {"topK": 3}}'
    )
    reply = call(
        "POST",
        f"{gateway.url}/v1beta/models/gemini-alias:generateContent",
        raw=raw,
        headers={"x-goog-api-key": key, "Content-Type": "application/json"},
    )
    assert reply.status == 200, reply.body
    received = gemini_upstream.requests_with("genai-bytes")[-1]
    assert received.raw == raw and received.path == f"/v1beta/models/{GEMINI}:generateContent"


def test_passthrough_stream_is_relayed_and_billed(gateway: Gateway, key: str) -> None:
    seen: list[str] = []
    client = client_for(gateway, key, seen=seen)
    chunks = list(client.models.generate_content_stream(model=GEMINI, contents="stream genai #fake:cached=4"))
    assert "".join(c.text or "" for c in chunks) == "You said: stream genai"
    usage = chunks[-1].usage_metadata
    record = wait_until(lambda: record_for(gateway, seen[-1]))
    assert (record["prompt_tokens"], record["cached_tokens"]) == (usage.prompt_token_count, 4)
    assert record["completion_tokens"] == usage.candidates_token_count
    assert record["endpoint"] == "generateContent" and record["channel"] == "gemini"
    assert record["cost_nano"] == (usage.prompt_token_count - 4) * 100 + 4 * 25 + usage.candidates_token_count * 400


def test_json_array_stream_without_alt_sse(gateway: Gateway, key: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "array form #fake:chunks=2"}]}]}
    for model in (GEMINI, "gpt-4o"):
        reply = call("POST", f"{gateway.url}/v1beta/models/{model}:streamGenerateContent?key={key}", body)
        assert reply.status == 200 and reply.headers["content-type"].startswith("application/json")
        elements = json.loads(reply.body)
        text = "".join(
            p.get("text", "") for e in elements for c in e.get("candidates", []) for p in c["content"].get("parts", [])
        )
        assert text == "You said: array form", model
        assert elements[-1]["candidates"][0]["finishReason"] == "STOP"


def test_safety_block_passes_through(gem: genai.Client) -> None:
    reply = gem.models.generate_content(model=GEMINI, contents="#fake:safety")
    assert reply.candidates[0].finish_reason == types.FinishReason.SAFETY


def test_count_tokens_and_models(gem: genai.Client) -> None:
    assert gem.models.count_tokens(model=GEMINI, contents="one two three").total_tokens == 3 + 3 + 3
    assert gem.models.count_tokens(model="gpt-4o", contents="hello world").total_tokens == 3 + 3 + 2 + 1
    names = [m.name for m in gem.models.list()]
    assert f"models/{GEMINI}" in names and "models/gpt-4o" in names and "models/claude-sonnet-4-5" in names
    assert gem.models.get(model=GEMINI).name == f"models/{GEMINI}"


# --------------------------------------------------------------- to an OpenAI and a Claude model, translated


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5"])
def test_text_and_system_instruction_reach_other_providers(
    gem, model, upstream: FakeOpenAI, claude_upstream: FakeAnthropic
) -> None:
    marker = f"genai-to-{model}"
    reply = gem.models.generate_content(
        model=model,
        contents=f"hello {marker}",
        config=types.GenerateContentConfig(
            system_instruction="Be brief.", max_output_tokens=40, stop_sequences=["zzz"]
        ),
    )
    assert reply.text == f"You said: hello {marker}"
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata.prompt_token_count > 0 and reply.usage_metadata.candidates_token_count == 4
    if model == "gpt-4o":
        sent = upstream.requests_with(marker)[-1].json
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert (sent["max_tokens"], sent["stop"]) == (40, ["zzz"])
    else:
        sent = claude_upstream.requests_with(marker)[-1].json
        assert sent["system"] == [{"type": "text", "text": "Be brief."}] and sent["max_tokens"] == 40


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-4-5"])
@pytest.mark.parametrize("stream", [False, True])
def test_tools_come_back_as_function_calls(gem: genai.Client, model: str, stream: bool) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AUTO_CALLS
    )
    contents = "weather #fake:tools=2"
    if stream:
        chunks = list(gem.models.generate_content_stream(model=model, contents=contents, config=config))
        calls = [call for c in chunks for call in c.function_calls or []]
    else:
        calls = gem.models.generate_content(model=model, contents=contents, config=config).function_calls
    assert [c.name for c in calls] == ["get_weather", "get_weather"]
    assert [c.args for c in calls] == [{"city": "Paris", "n": 0}, {"city": "Paris", "n": 1}]


def test_function_responses_and_images_reach_claude_in_its_shape(gem: genai.Client, claude_upstream) -> None:
    image = png_bytes()
    gem.models.generate_content(
        model="claude-sonnet-4-5",
        contents=[
            types.Content(role="user", parts=[types.Part(text="weather?")]),
            types.Content(
                role="model",
                parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args={"city": "Oslo"}))],
            ),
            types.Content(
                role="user",
                parts=[
                    types.Part(function_response=types.FunctionResponse(name="get_weather", response={"temp": -3})),
                    types.Part.from_bytes(data=image, mime_type="image/png"),
                    types.Part(text="and this? genai-claude-tools"),
                ],
            ),
        ],
        config=types.GenerateContentConfig(
            tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AUTO_CALLS
        ),
    )
    sent = claude_upstream.requests_with("genai-claude-tools")[-1].json
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    use = sent["messages"][1]["content"][0]
    assert (use["type"], use["name"], use["input"]) == ("tool_use", "get_weather", {"city": "Oslo"})
    result, picture, text = sent["messages"][2]["content"]
    assert (
        result["type"] == "tool_result"
        and result["tool_use_id"] == use["id"]
        and json.loads(result["content"]) == {"temp": -3}
    )
    assert picture["source"] == {"type": "base64", "media_type": "image/png", "data": base64.b64encode(image).decode()}
    assert text == {"type": "text", "text": "and this? genai-claude-tools"}


def test_json_mode_reaches_openai_as_response_format(gem: genai.Client, upstream: FakeOpenAI) -> None:
    gem.models.generate_content(
        model="gpt-4o",
        contents="json please genai-json",
        config=types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema={"type": "object", "properties": {"a": {"type": "string"}}},
        ),
    )
    sent = upstream.requests_with("genai-json")[-1].json
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
    }


def test_translated_bill_is_exact(gateway: Gateway, key: str) -> None:
    seen: list[str] = []
    client = client_for(gateway, key, seen=seen)
    reply = client.models.generate_content(model="gpt-4o", contents="bill me genai")
    record = wait_until(lambda: record_for(gateway, seen[-1]))
    prompt, completion = reply.usage_metadata.prompt_token_count, reply.usage_metadata.candidates_token_count
    assert (record["prompt_tokens"], record["completion_tokens"], record["channel"]) == (prompt, completion, "fake")
    assert record["cost_nano"] == prompt * 2500 + completion * 10000


def test_translated_cut_stream_raises(gem: genai.Client) -> None:
    with pytest.raises(Exception) as raised:  # the SDK raises its APIError for the error event, or the transport's
        list(gem.models.generate_content_stream(model="claude-sonnet-4-5", contents="#fake:cut a b c"))
    assert "stream" in str(raised.value).lower() or isinstance(raised.value, errors.APIError)


# ------------------------------------------------------------------------------- the gateway's own errors


def test_gateway_errors_are_google_shaped(gateway: Gateway) -> None:
    bad = client_for(gateway, "sk-not-a-key-000000000")
    with pytest.raises(errors.ClientError) as raised:
        bad.models.generate_content(model=GEMINI, contents="hi")
    assert raised.value.code == 401 and raised.value.status == "UNAUTHENTICATED"
    key = gateway.create_key("genai-errors", quota_usd="1")
    client = client_for(gateway, key)
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model="no-such-model", contents="hi")
    assert (missing.value.code, missing.value.status) == (404, "NOT_FOUND")
    for body in ({"contents": []}, {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, {"messages": []}):
        reply = call("POST", f"{gateway.url}/v1beta/models/{GEMINI}:generateContent", body, {"x-goog-api-key": key})
        assert reply.status == 400, body
        assert reply.json()["error"]["status"] == "INVALID_ARGUMENT" and set(reply.json()["error"]) == {
            "code",
            "message",
            "status",
        }
    assert key_row(gateway, "genai-errors")["used_nano"] == 0


def test_no_quota_is_resource_exhausted(gateway: Gateway) -> None:
    key = gateway.create_key("genai-poor", quota_usd="0.000001")
    client = client_for(gateway, key)
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(
            model=GEMINI, contents="expensive", config=types.GenerateContentConfig(max_output_tokens=5000)
        )
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_unknown_action_is_404(gateway: Gateway, key: str) -> None:
    reply = call("POST", f"{gateway.url}/v1beta/models/{GEMINI}:embedText", {}, {"x-goog-api-key": key})
    assert reply.status == 404 and reply.json()["error"]["status"] == "NOT_FOUND"
