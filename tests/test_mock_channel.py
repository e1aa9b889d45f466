"""Mock channels (`type: mock`, llmrelay/providers/mock.py): a gateway with no provider key answers every
endpoint in the real wire formats, driven here with the official openai, anthropic and google-genai SDKs,
streaming and not; replies are checked against the SDKs' own types, and bills against the built-in prices.
Failures drawn by `failure_rate` fail over to another channel; `latency` is seen through a first-byte timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import math
import re
import shlex
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import pytest
import yaml
from anthropic import Anthropic
from google import genai
from google.genai import types as genai_types
from openai import OpenAI
from openai.types import Completion, CreateEmbeddingResponse, ImagesResponse, ModerationCreateResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from llmrelay.config import ConfigError, MockOptions, load_config, parse_config
from llmrelay.providers.mock import MockUpstream, demo_config, demo_config_yaml
from llmrelay.providers.mock_common import Tool, plan_reply, prompt_words, reply_words, sample, tool_to_call
from llmrelay.providers.mock_media import IMAGE_PNG
from tests.conftest import ADMIN_KEY, Gateway, call, make_gateway, wait_until
from tests.fakes.openai_upstream import FakeOpenAI
from tests.test_billing import record_for

CONFIG = """
channels:
  - name: mock-openai
    type: mock
    models: [gpt-4o-mini, gpt-4, gpt-4-turbo, gpt-3.5-turbo-instruct, text-embedding-3-small, dall-e-3, tts-1,
             whisper-1, omni-moderation-latest]
    mock: {reply_tokens: 12}
  - name: mock-claude
    type: mock
    format: anthropic
    api_key: sk-ant-ignored-by-the-mock
    models: [claude-sonnet-4-5]
    mock: {reply_tokens: 10, token_interval: 0.001}
  - name: mock-gemini
    type: mock
    format: gemini
    models: [gemini-2.0-flash]
    mock: {token_interval: 0.001}
  # Tried first for gpt-4-turbo, and always failing: the request fails over to mock-openai.
  - name: mock-broken
    type: mock
    models: [gpt-4-turbo]
    priority: 1
    mock: {failure_rate: 1, seed: 7}
  # Tried first for gpt-4, and slower to begin than its first-byte timeout allows.
  - name: mock-slow
    type: mock
    models: [gpt-4]
    priority: 1
    timeout: {first_byte: 0.3}
    mock: {latency: 5}
# No channel rests here, so every failover test finds the failing channel first.
routing: {failures_to_cool_down: 1000000, cooldown: 0.001, max_cooldown: 0.001}
"""
# Built-in prices in nano-dollars per token (USD per 1M tokens x 1000), per image, character, second.
GPT_4O_MINI = (150, 600)
CLAUDE_SONNET = (3000, 15000)
GEMINI_FLASH = (100, 400)
EMBEDDING_SMALL = 20
DALL_E_3_SQUARE = 40_000_000
TTS_1_CHARACTER = 15_000
WHISPER_SECOND = 100_000
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"],
}


@pytest.fixture(scope="module")
def mock_gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeOpenAI) -> Iterator[Gateway]:
    gateway = make_gateway(tmp_path_factory.mktemp("mock-gateway"), upstream)
    gateway.config_path.write_text(CONFIG)  # mock channels only: the fake upstream is not used
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def key(mock_gateway: Gateway) -> str:
    return mock_gateway.create_key("mock-user", quota_usd="5")


@pytest.fixture(scope="module")
def client(mock_gateway: Gateway, key: str) -> OpenAI:
    return OpenAI(api_key=key, base_url=mock_gateway.base_url, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def claude(mock_gateway: Gateway, key: str) -> Anthropic:
    return Anthropic(api_key=key, base_url=mock_gateway.url, max_retries=0, timeout=30)


def gemini_client(gateway: Gateway, key: str, seen: list[str]) -> genai.Client:
    """google-genai on the gateway; `seen` collects each reply's x-request-id (for the bill)."""
    hooks = {"event_hooks": {"response": [lambda r: seen.append(r.headers["x-request-id"])]}}
    options = genai_types.HttpOptions(base_url=gateway.url, api_version="v1beta", client_args=hooks)
    return genai.Client(api_key=key, http_options=options)


def expected_text(prompt: str, count: int) -> str:
    return " ".join(reply_words(prompt, count))


def sse_data(body: bytes) -> list[Any]:
    """The JSON payloads of an SSE body (OpenAI's [DONE] left out)."""
    lines = body.decode().splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: ") and line != "data: [DONE]"]


def billed(gateway: Gateway, request_id: str) -> dict[str, Any]:
    record = wait_until(lambda: record_for(gateway, request_id))
    assert record is not None, f"no usage record for {request_id}"
    return record


def cost(price: tuple[int, int], prompt_tokens: int, completion_tokens: int) -> int:
    return prompt_tokens * price[0] + completion_tokens * price[1]


# ---- OpenAI format: the openai SDK --------------------------------------------------------------------------------


def test_chat_reply_usage_and_bill(mock_gateway: Gateway, client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello from the openai SDK"}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "This is a mock reply from llmrelay to: Hello from the openai"
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 12)
    record = billed(mock_gateway, raw.headers["x-request-id"])
    assert record["channel"] == "mock-openai"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (5, 12)
    assert record["cost_nano"] == cost(GPT_4O_MINI, 5, 12)


def test_chat_stream_with_usage_and_bill(mock_gateway: Gateway, client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Stream it please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected_text("Stream it please", 12)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (5, 12)
    record = billed(mock_gateway, raw.headers["x-request-id"])
    assert (record["prompt_tokens"], record["completion_tokens"], record["cost_nano"]) == (
        5,
        12,
        cost(GPT_4O_MINI, 5, 12),
    )


def test_chat_wire_shapes_are_openais(mock_gateway: Gateway, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "shape check"}], "max_tokens": 4}
    reply = call("POST", f"{mock_gateway.base_url}/chat/completions", body, auth)
    assert reply.status == 200, reply.body
    completion = ChatCompletion.model_validate(reply.json())
    assert completion.choices[0].finish_reason == "length"  # max_tokens below reply_tokens cuts the reply
    assert completion.usage is not None and completion.usage.completion_tokens == 4
    streamed = call(
        "POST",
        f"{mock_gateway.base_url}/chat/completions",
        {**body, "stream": True, "stream_options": {"include_usage": True}},
        auth,
    )
    assert streamed.body.rstrip().endswith(b"data: [DONE]")
    chunks = [ChatCompletionChunk.model_validate(data) for data in sse_data(streamed.body)]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_chat_tool_call_then_answer(client: OpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}]
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    tool_call = choice.message.tool_calls[0]
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {"city": "mock", "unit": "celsius"}
    assert reply.usage.completion_tokens == 4  # the words of {"city": "mock", "unit": "celsius"}
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "Sunny"},
    ]
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=tools)
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content

    streamed = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=messages[:1], tools=tools, stream=True)
    )
    fragments = [c.choices[0].delta.tool_calls[0] for c in streamed if c.choices and c.choices[0].delta.tool_calls]
    assert fragments[0].id and fragments[0].function.name == "get_weather"
    assert json.loads("".join(f.function.arguments or "" for f in fragments)) == {"city": "mock", "unit": "celsius"}


def test_json_schema_reply_fits_the_schema(client: OpenAI) -> None:
    response_format = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA}}
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "json please"}], response_format=response_format
    )
    assert json.loads(reply.choices[0].message.content) == {"city": "mock", "unit": "celsius"}


def test_responses_api_is_served_through_chat(client: OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="Responses via the mock")
    assert response.output_text == expected_text("Responses via the mock", 12)
    assert (response.usage.input_tokens, response.usage.output_tokens) == (4, 12)


def test_legacy_completion(mock_gateway: Gateway, key: str, client: OpenAI) -> None:
    reply = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test", max_tokens=5)
    assert reply.choices[0].text == expected_text("Say this is a test", 5)
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 5)
    raw = call(
        "POST",
        f"{mock_gateway.base_url}/completions",
        {"model": "gpt-3.5-turbo-instruct", "prompt": ["one", "two words"]},
        {"Authorization": f"Bearer {key}"},
    )
    completion = Completion.model_validate(raw.json())
    assert [c.index for c in completion.choices] == [0, 1]
    streamed = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="stream me", stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == expected_text("stream me", 12)


def test_embeddings_are_deterministic_unit_vectors_and_billed(mock_gateway: Gateway, key: str, client: OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["alpha beta", "gamma"])
    reply = raw.parse()  # the SDK asks for base64 and decodes it
    first, second = (item.embedding for item in reply.data)
    assert len(first) == 1536 and math.isclose(sum(v * v for v in first), 1.0, rel_tol=1e-3)
    assert first != second
    assert client.embeddings.create(model="text-embedding-3-small", input="alpha beta").data[0].embedding == first
    assert reply.usage.prompt_tokens == 3
    record = billed(mock_gateway, raw.headers["x-request-id"])
    assert (record["prompt_tokens"], record["cost_nano"]) == (3, 3 * EMBEDDING_SMALL)
    floats = call(
        "POST",
        f"{mock_gateway.base_url}/embeddings",
        {"model": "text-embedding-3-small", "input": "x", "dimensions": 8},
        {"Authorization": f"Bearer {key}"},
    )
    assert len(CreateEmbeddingResponse.model_validate(floats.json()).data[0].embedding) == 8


def test_image_is_a_png_and_billed_per_image(mock_gateway: Gateway, key: str, client: OpenAI) -> None:
    raw = client.images.with_raw_response.generate(
        model="dall-e-3", prompt="a lighthouse", size="1024x1024", response_format="b64_json"
    )
    image = raw.parse().data[0]
    assert base64.b64decode(image.b64_json) == IMAGE_PNG and IMAGE_PNG.startswith(b"\x89PNG\r\n\x1a\n")
    assert image.revised_prompt
    assert billed(mock_gateway, raw.headers["x-request-id"])["cost_nano"] == DALL_E_3_SQUARE
    linked = call(
        "POST",
        f"{mock_gateway.base_url}/images/generations",
        {"model": "dall-e-3", "prompt": "a link"},
        {"Authorization": f"Bearer {key}"},
    )
    url = ImagesResponse.model_validate(linked.json()).data[0].url
    assert url is not None and base64.b64decode(url.split(",", 1)[1]) == IMAGE_PNG


def test_speech_is_audio_and_billed_per_character(mock_gateway: Gateway, client: OpenAI) -> None:
    raw = client.audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input="Hello world")
    audio = raw.content
    assert audio[:2] == b"\xff\xfb" and raw.headers["content-type"] == "audio/mpeg"  # an MPEG audio frame
    assert billed(mock_gateway, raw.headers["x-request-id"])["cost_nano"] == len("Hello world") * TTS_1_CHARACTER
    wav = client.audio.speech.create(model="tts-1", voice="alloy", input="wav", response_format="wav").read()
    with wave.open(io.BytesIO(wav)) as parsed:
        assert parsed.getnframes() > 0


def test_transcription_and_moderation(mock_gateway: Gateway, key: str, client: OpenAI) -> None:
    audio = io.BytesIO()
    with wave.open(audio, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(bytes(2 * 8000 * 2))  # two seconds of silence
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("two.wav", audio.getvalue(), "audio/wav")
    )
    assert raw.parse().text == "This is a mock transcription from llmrelay."
    assert billed(mock_gateway, raw.headers["x-request-id"])["cost_nano"] == 2 * WHISPER_SECOND
    verbose = client.audio.translations.create(
        model="whisper-1", file=("two.wav", audio.getvalue(), "audio/wav"), response_format="verbose_json"
    )
    assert verbose.text == "This is a mock translation from llmrelay."
    moderation = call(
        "POST",
        f"{mock_gateway.base_url}/moderations",
        {"model": "omni-moderation-latest", "input": ["fine", "also fine"]},
        {"Authorization": f"Bearer {key}"},
    )
    results = ModerationCreateResponse.model_validate(moderation.json()).results
    assert [r.flagged for r in results] == [False, False]


# ---- Anthropic format: the anthropic SDK --------------------------------------------------------------------------


def test_anthropic_message_and_bill(mock_gateway: Gateway, claude: Anthropic) -> None:
    raw = claude.messages.with_raw_response.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        system="You are terse.",
        messages=[{"role": "user", "content": "Hello Claude"}],
    )
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == expected_text("Hello Claude", 10)
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == ("end_turn", 5, 10)
    record = billed(mock_gateway, raw.headers["x-request-id"])
    assert record["channel"] == "mock-claude" and record["cost_nano"] == cost(CLAUDE_SONNET, 5, 10)
    assert (
        claude.messages.count_tokens(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "a b c"}]
        ).input_tokens
        == 3
    )


def test_anthropic_stream_events_and_bill(mock_gateway: Gateway, claude: Anthropic, key: str) -> None:
    with claude.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "Stream Claude"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert text == expected_text("Stream Claude", 10)
    assert (final.usage.input_tokens, final.usage.output_tokens) == (2, 10)
    assert billed(mock_gateway, request_id)["cost_nano"] == cost(CLAUDE_SONNET, 2, 10)
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 3,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    raw = call("POST", f"{mock_gateway.url}/v1/messages", body, headers)
    adapter = TypeAdapter(anthropic.types.RawMessageStreamEvent)
    data = sse_data(raw.body)
    assert [event["type"] for event in data[:3]] == ["message_start", "content_block_start", "ping"]
    events = [adapter.validate_python(event) for event in data if event["type"] != "ping"]  # the SDK skips pings
    assert [e.type for e in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    assert events[-2].delta.stop_reason == "max_tokens" and events[-2].usage.output_tokens == 3


def test_anthropic_tool_use(claude: Anthropic) -> None:
    tool = {"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER_SCHEMA}
    message = claude.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        tools=[tool],
        messages=[{"role": "user", "content": "Call get_weather for Rome"}],
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input == {"city": "mock", "unit": "celsius"}


def test_anthropic_sdk_reaches_the_openai_format_mock(mock_gateway: Gateway, claude: Anthropic) -> None:
    with claude.messages.stream(
        model="gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "Translated both ways"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["x-request-id"]
    assert text == expected_text("Translated both ways", 12)
    assert final.usage.output_tokens == 12
    record = billed(mock_gateway, request_id)
    assert record["channel"] == "mock-openai"
    assert record["cost_nano"] == cost(GPT_4O_MINI, record["prompt_tokens"], 12)
    message = claude.messages.create(
        model="gpt-4o-mini", max_tokens=100, messages=[{"role": "user", "content": "Not streamed"}]
    )
    assert message.content[0].text == expected_text("Not streamed", 12) and message.stop_reason == "end_turn"


# ---- Gemini format: the google-genai SDK --------------------------------------------------------------------------


def test_gemini_generate_and_stream_billed(mock_gateway: Gateway, key: str) -> None:
    seen: list[str] = []
    gemini = gemini_client(mock_gateway, key, seen)
    reply = gemini.models.generate_content(model="gemini-2.0-flash", contents="Hello Gemini")
    assert reply.text == expected_text("Hello Gemini", 16)
    usage = reply.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count) == (2, 16)
    assert billed(mock_gateway, seen[-1])["cost_nano"] == cost(GEMINI_FLASH, 2, 16)

    chunks = list(gemini.models.generate_content_stream(model="gemini-2.0-flash", contents="Stream Gemini now"))
    assert "".join(c.text or "" for c in chunks) == expected_text("Stream Gemini now", 16)
    assert chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == 16
    record = billed(mock_gateway, seen[-1])
    assert (record["prompt_tokens"], record["completion_tokens"]) == (3, 16)
    assert record["cost_nano"] == cost(GEMINI_FLASH, 3, 16)
    assert gemini.models.count_tokens(model="gemini-2.0-flash", contents="one two three four").total_tokens == 4


def test_gemini_wire_shapes_and_function_call(mock_gateway: Gateway, key: str) -> None:
    headers = {"x-goog-api-key": key}
    url = f"{mock_gateway.url}/v1beta/models/gemini-2.0-flash"
    body = {"contents": [{"role": "user", "parts": [{"text": "shapes"}]}], "generationConfig": {"maxOutputTokens": 3}}
    reply = genai_types.GenerateContentResponse.model_validate(
        call("POST", f"{url}:generateContent", body, headers).json()
    )
    assert reply.candidates[0].finish_reason == genai_types.FinishReason.MAX_TOKENS
    streamed = call("POST", f"{url}:streamGenerateContent?alt=sse", body, headers)
    chunks = [genai_types.GenerateContentResponse.model_validate(data) for data in sse_data(streamed.body)]
    assert len(chunks) == 3 and chunks[-1].usage_metadata.candidates_token_count == 3

    weather = genai_types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER_SCHEMA)
    config = genai_types.GenerateContentConfig(
        tools=[genai_types.Tool(function_declarations=[weather])],
        automatic_function_calling=genai_types.AutomaticFunctionCallingConfig(disable=True),
    )
    gemini = gemini_client(mock_gateway, key, [])
    called = gemini.models.generate_content(model="gemini-2.0-flash", contents="weather in Oslo?", config=config)
    assert called.function_calls[0].name == "get_weather"
    assert called.function_calls[0].args == {"city": "mock", "unit": "celsius"}


# ---- failures and latency -----------------------------------------------------------------------------------------


def admin_channels(gateway: Gateway) -> dict[str, dict[str, Any]]:
    reply = call("GET", f"{gateway.url}/admin/channels", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert reply.status == 200, reply.body
    return {view["name"]: view for view in reply.json()["data"]}


def test_drawn_failures_fail_over_to_another_channel(mock_gateway: Gateway, client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4-turbo", messages=[{"role": "user", "content": "survive a failure"}]
    )
    assert raw.parse().choices[0].message.content == expected_text("survive a failure", 12)
    assert billed(mock_gateway, raw.headers["x-request-id"])["channel"] == "mock-openai"
    broken = admin_channels(mock_gateway)["mock-broken"]
    assert "failure_rate" in broken["last_error"]


def test_latency_delays_the_first_byte(mock_gateway: Gateway, client: OpenAI) -> None:
    """mock-slow answers gpt-4 only after `latency: 5`, past its 0.3 s first-byte timeout: the gateway gives up
    on it and the request is served by mock-openai (no clock is read here)."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4", messages=[{"role": "user", "content": "too slow"}]
    )
    assert raw.parse().choices[0].message.content == expected_text("too slow", 12)
    assert billed(mock_gateway, raw.headers["x-request-id"])["channel"] == "mock-openai"
    assert "timed out" in admin_channels(mock_gateway)["mock-slow"]["last_error"]


def test_models_are_listed_as_mock_channels(client: OpenAI) -> None:
    owners = {model.id: model.owned_by for model in client.models.list()}
    assert owners["gpt-4o-mini"] == owners["claude-sonnet-4-5"] == "mock"


async def failure_pattern(rate: float, seed: int, requests: int) -> tuple[list[int], int, int]:
    """Statuses of `requests` chat calls to a MockUpstream of its own, plus the replies to a path the format
    lacks and to a body that is not JSON."""
    document = mock_channel(mock={"failure_rate": rate, "seed": seed})
    mocks = MockUpstream()
    (channel,) = await mocks.start(parse_config(document, {}).channels)
    try:
        async with aiohttp.ClientSession() as session:
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            statuses = []
            for _ in range(requests):
                async with session.post(f"{channel.base_url}/chat/completions", json=body) as reply:
                    statuses.append(reply.status)
            async with session.post(f"{channel.base_url}/nowhere", json=body) as missing:
                assert (await missing.json())["error"]["code"] == "unknown_url"
            async with session.post(f"{channel.base_url}/embeddings", data=b"{") as broken:
                assert (await broken.json())["error"]["type"] == "invalid_request_error"
            return statuses, missing.status, broken.status
    finally:
        await mocks.stop()


def test_seeded_failures_repeat_and_the_mock_runs_on_its_own() -> None:
    first, missing, broken = asyncio.run(failure_pattern(0.5, 3, 40))
    assert asyncio.run(failure_pattern(0.5, 3, 40))[0] == first  # the same seed, the same failures
    assert set(first) == {200, 500} and 10 < first.count(500) < 30
    assert (missing, broken) == (404, 400)
    assert set(asyncio.run(failure_pattern(0, 3, 5))[0]) == {200}


# ---- configuration -------------------------------------------------------------------------------------------------


def mock_channel(**options: Any) -> dict[str, object]:
    return {"channels": [{"name": "m", "type": "mock", "models": ["gpt-4o-mini"], **options}]}


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"mock": {"failure_rate": 2}}, "channel 'm', mock: 'failure_rate' must be a number from 0 to 1"),
        ({"mock": {"latency": -1}}, "channel 'm', mock: 'latency' must be a number of seconds, 0 or more"),
        ({"mock": {"token_interval": ".inf"}}, "'token_interval' must be a number of seconds, 0 or more"),
        ({"mock": {"reply_tokens": 0}}, "channel 'm', mock: 'reply_tokens' must be a whole number of at least 1"),
        ({"mock": {"seed": "x"}}, "channel 'm', mock: 'seed' must be a whole number of at least 0"),
        ({"mock": {"latncy": 1}}, "channel 'm': unknown mock option(s) latncy"),
        ({"mock": [1]}, "channel 'm': 'mock' is a mapping with latency"),
        ({"format": "cohere"}, "channel 'm': 'format' must be one of openai, anthropic, gemini, not 'cohere'"),
        ({"base_url": "http://x"}, "channel 'm': a mock channel has no base_url"),
        ({"responses": True}, "channel 'm': unknown option(s) responses"),
    ],
)
def test_a_bad_mock_option_is_one_clear_line(channel: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(mock_channel(**channel), {})
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_serve_refuses_a_bad_mock_option_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("channels:\n  - {name: m, type: mock, models: [gpt-4o-mini], mock: {failure_rate: 1.5}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmrelay", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"LLMRELAY_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "llmrelay: channel 'm', mock: 'failure_rate' must be a number from 0 to 1"
    ]


def test_mock_channel_defaults() -> None:
    (channel,) = parse_config(mock_channel(api_key="anything"), {}).channels
    assert channel.type == "mock" and channel.mock == MockOptions()
    assert channel.responses is False  # /v1/responses goes through chat completions


def test_demo_config_serves_every_built_in_model_of_each_format(tmp_path: Path) -> None:
    config = demo_config({"LLMRELAY_DATA_DIR": str(tmp_path)})
    formats = {c.name: c.mock.format for c in config.channels if c.mock}
    assert formats == {"mock-openai": "openai", "mock-anthropic": "anthropic", "mock-gemini": "gemini"}
    served = {model for c in config.channels for model in c.models}
    assert {"gpt-4o-mini", "text-embedding-3-small", "dall-e-3", "claude-sonnet-4-5", "gemini-2.5-flash"} <= served
    assert all(config.prices.lookup(model) is not None for model in served)  # billed at real prices
    written = tmp_path / "demo.yaml"
    written.write_text(demo_config_yaml())
    assert load_config(written, {"LLMRELAY_DATA_DIR": str(tmp_path)}).channels == config.channels


# ---- docs/mock.md ---------------------------------------------------------------------------------------------------


def doc_blocks(language: str) -> list[str]:
    page = (Path(__file__).resolve().parents[1] / "docs" / "mock.md").read_text()
    return [code for lang, code in re.findall(r"```(\w+)\n(.*?)```", page, re.S) if lang == language]


def test_doc_examples_run(mock_gateway: Gateway, key: str) -> None:
    def localise(code: str) -> str:
        return code.replace("http://127.0.0.1:8080", mock_gateway.url).replace("sk-...", key)

    blocks = doc_blocks("python")
    assert len(blocks) == 3
    for code in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(localise(code), "docs/mock.md", "exec"), {})
        assert "This is a mock reply from llmrelay to: Hello!" in out.getvalue(), code
    (command,) = [block for block in doc_blocks("sh") if block.lstrip().startswith("curl")]
    argv = shlex.split(localise(command).replace("\\\n", " "))
    result = subprocess.run([*argv, "--fail-with-body", "-sS"], capture_output=True, text=True, timeout=30)
    assert "This is a mock reply from llmrelay to: Hello!" in result.stdout, result.stdout + result.stderr


def test_doc_configs_are_valid(tmp_path: Path) -> None:
    blocks = doc_blocks("yaml")
    assert len(blocks) == 2
    for block in blocks:
        config = parse_config(yaml.safe_load(block), {"LLMRELAY_DATA_DIR": str(tmp_path)})
        assert all(channel.mock is not None for channel in config.channels)


# ---- the reply, as pure functions ----------------------------------------------------------------------------------


def test_replies_are_the_configured_length() -> None:
    options = MockOptions(reply_tokens=20)
    assert plan_reply(options, "a b", None).tokens == 20
    cut = plan_reply(options, "a b", 7)
    assert (cut.tokens, cut.truncated) == (7, True)
    assert "".join(cut.pieces()) == cut.text
    assert expected_text("one two three four five six seven eight nine ten", 18).split()[8:16] == [
        "one", "two", "three", "four", "five", "six", "seven", "eight",
    ]  # fmt: skip


def test_tools_and_schemas() -> None:
    weather, search = Tool("get_weather", WEATHER_SCHEMA), Tool("search_docs", {"type": "object"})
    assert tool_to_call([weather, search], "what's the weather?") is weather
    assert tool_to_call([weather, search], "please search_docs") is search
    assert tool_to_call([weather, search], "hello") is None
    assert tool_to_call([weather, search], "hello", "any") is weather
    assert tool_to_call([weather, search], "weather", "none") is None
    assert tool_to_call([weather, search], "hello", "any", "search_docs") is search
    nested = {
        "type": "OBJECT",
        "properties": {
            "when": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": ["string", "null"]}},
            "flag": {"type": "boolean"},
            "kind": {"const": "fixed"},
        },
    }
    assert sample(nested) == {"when": 1, "tags": ["mock"], "flag": True, "kind": "fixed"}
    assert (
        prompt_words([{"role": "user", "content": [{"type": "text", "text": "a b"}, {"type": "image_url"}]}], "c") == 3
    )
