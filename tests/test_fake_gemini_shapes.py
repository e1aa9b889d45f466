"""The fake Gemini upstream itself: what it emits validates against the google-genai SDK's own types (which
forbid fields they do not know), and it refuses what the real Generative Language API refuses. Talks to the
fake directly (no gateway), with the official SDK (API versions v1beta and v1) and with raw HTTP."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest
from google import genai
from google.genai import errors, types
from google.genai.models import _Model_from_mldev

from tests.conftest import Reply, call
from tests.fakes.gemini_upstream import (
    GEMINI_UPSTREAM_SECRET,
    INVALID_KEY_MESSAGE,
    JSON_REPLY,
    MODELS,
    SAFETY_RATINGS,
    THINKING_TEXT,
    TOOLS_PREAMBLE,
    FakeGemini,
)
from tests.fakes.openai_upstream import png_bytes

MODEL = "gemini-2.0-flash"
HEADERS = {"x-goog-api-key": GEMINI_UPSTREAM_SECRET}
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"
COUNT = f"/v1beta/models/{MODEL}:countTokens"
PNG_B64 = base64.b64encode(png_bytes()).decode()
LOOKUP = {
    "name": "lookup_city",
    "description": "Find a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# The keys of a Model that the SDK's Gemini API converter reads (google.genai.models._Model_from_mldev).
MODEL_WIRE_KEYS = {
    "name",
    "displayName",
    "description",
    "version",
    "inputTokenLimit",
    "outputTokenLimit",
    "supportedGenerationMethods",
    "temperature",
    "maxTemperature",
    "topP",
    "topK",
    "thinking",
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    server = FakeGemini().start()
    yield server
    server.stop()


def client_for(fake: FakeGemini, api_version: str = "v1beta", key: str = GEMINI_UPSTREAM_SECRET, **options: Any):
    return genai.Client(
        api_key=key, http_options=types.HttpOptions(base_url=fake.base_url, api_version=api_version, **options)
    )


@pytest.fixture(scope="module", params=["v1beta", "v1"])
def gemini(fake: FakeGemini, request: pytest.FixtureRequest) -> genai.Client:
    return client_for(fake, request.param)


@pytest.fixture(scope="module")
def beta(fake: FakeGemini) -> genai.Client:
    return client_for(fake)


def user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": p} if isinstance(p, str) else p for p in parts]}


def model_turn(*parts: Any) -> dict[str, Any]:
    return {"role": "model", "parts": [{"text": p} if isinstance(p, str) else p for p in parts]}


def body_of(text: str, **extra: Any) -> dict[str, Any]:
    return {"contents": [user(text)], **extra}


def post(fake: FakeGemini, body: object, path: str = GENERATE, headers: dict[str, str] | None = None) -> Reply:
    return call("POST", f"{fake.base_url}{path}", body, HEADERS if headers is None else headers)


def strict(model: type[pydantic.BaseModel], data: Any) -> Any:
    """The SDK's types forbid unknown fields; an unknown enum value only warns, so warnings are errors here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return model.model_validate(data)


def ok_json(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"].startswith("application/json")
    return reply.json()


def config(**fields: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(**fields)


def raw_exchange(fake: FakeGemini, path: str, body: object, headers: dict[str, str] | None = None) -> tuple[str, bytes]:
    """One request over a plain socket; the status line + headers and the raw (still chunked) body."""
    payload = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", "Connection: close"]
    lines += [f"Content-Length: {len(payload)}"] + [f"{k}: {v}" for k, v in (headers or HEADERS).items()]
    with socket.create_connection(("127.0.0.1", fake.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        data = b""
        while piece := sock.recv(65536):
            data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode(), rest


def http_chunks(chunked: bytes) -> list[bytes]:
    """The chunks of a complete chunked transfer-encoded body: one per write the server made."""
    chunks = []
    while True:
        size_line, _, chunked = chunked.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert chunked == b"\r\n"
            return chunks
        chunks.append(chunked[:size])
        assert chunked[size : size + 2] == b"\r\n"
        chunked = chunked[size + 2 :]


def sse_chunks(fake: FakeGemini, body: object, path: str = STREAM + "?alt=sse") -> list[dict[str, Any]]:
    """Every event of an SSE stream, checked: each is its own write, `data: <json>\\r\\n\\r\\n` exactly, and
    validates as a GenerateContentResponse."""
    head, rest = raw_exchange(fake, path, body)
    assert head.startswith("HTTP/1.1 200"), head
    assert "content-type: text/event-stream" in head.lower()
    assert "transfer-encoding: chunked" in head.lower()
    events = []
    for chunk in http_chunks(rest):
        assert chunk.startswith(b"data: ") and chunk.endswith(b"\r\n\r\n"), chunk
        data = chunk.removeprefix(b"data: ").removesuffix(b"\r\n\r\n")
        assert b"\n" not in data
        event = json.loads(data)
        strict(types.GenerateContentResponse, event)
        events.append(event)
    return events


def eventually(condition: Callable[[], bool], seconds: float = 5) -> bool:
    """The fake's counters move on its own thread, just after the client has seen the end of the stream."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def prompt_tokens(*texts_per_content: str, system: str = "") -> int:
    return 3 + sum(3 + len(t.split()) for t in texts_per_content) + len(system.split())


# ---- plain text ------------------------------------------------------------------------------------------------


def test_text_reply_with_the_sdk(fake: FakeGemini, gemini: genai.Client) -> None:
    version = gemini._api_client._http_options.api_version
    reply = gemini.models.generate_content(model=MODEL, contents="hello there version-check")
    assert reply.text == "You said: hello there version-check"
    (candidate,) = reply.candidates
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.index == 0
    assert candidate.content.role == "model"
    usage = reply.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (9, 5, 14)
    assert usage.thoughts_token_count is None and usage.cached_content_token_count is None
    assert reply.model_version == MODEL
    assert reply.response_id.startswith("fake-")
    assert fake.state.requests[-1].path == f"/{version}/models/{MODEL}:generateContent"


def test_raw_reply_is_exactly_the_documented_shape(fake: FakeGemini) -> None:
    reply = ok_json(post(fake, body_of("hi there")))
    strict(types.GenerateContentResponse, reply)
    assert reply.pop("responseId").startswith("fake-")
    assert reply == {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "You said: hi there"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 4, "totalTokenCount": 12},
        "modelVersion": MODEL,
    }


def test_response_ids_count_up(beta: genai.Client) -> None:
    first = beta.models.generate_content(model=MODEL, contents="one").response_id
    second = beta.models.generate_content(model=MODEL, contents="two").response_id
    assert int(second.removeprefix("fake-")) == int(first.removeprefix("fake-")) + 1


def test_prompt_tokens_count_every_turn_and_the_system_instruction(fake: FakeGemini) -> None:
    body = {
        "contents": [user("first question here"), model_turn("an answer"), user("and again")],
        "systemInstruction": {"parts": [{"text": "be very brief"}]},
    }
    reply = ok_json(post(fake, body))
    expected = prompt_tokens("first question here", "an answer", "and again", system="be very brief")
    assert reply["usageMetadata"]["promptTokenCount"] == expected == 3 + 6 + 5 + 5 + 3
    assert reply["candidates"][0]["content"]["parts"] == [{"text": "You said: and again"}]


def test_system_instruction_from_the_sdk(beta: genai.Client) -> None:
    reply = beta.models.generate_content(
        model=MODEL, contents="hello", config=config(system_instruction="you are a parrot")
    )
    assert reply.usage_metadata.prompt_token_count == prompt_tokens("hello", system="you are a parrot")


def test_requests_are_recorded(fake: FakeGemini, beta: genai.Client) -> None:
    beta.models.generate_content(model=MODEL, contents="record-marker-9")
    (received,) = fake.requests_with("record-marker-9")
    assert received.path == GENERATE
    assert received.json == {"contents": [{"parts": [{"text": "record-marker-9"}], "role": "user"}]}
    assert received.headers["x-goog-api-key"] == GEMINI_UPSTREAM_SECRET


# ---- images ----------------------------------------------------------------------------------------------------


def test_inline_image_is_counted(fake: FakeGemini, beta: genai.Client) -> None:
    image = types.Part.from_bytes(data=png_bytes(), mime_type="image/png")
    reply = beta.models.generate_content(model=MODEL, contents=["what is this image-marker", image])
    assert reply.text == "You said: what is this image-marker (1 images)"
    (received,) = fake.requests_with("image-marker")
    # The SDK sends web-safe base64 and the proto field name mime_type: both as the real API accepts them.
    assert received.json["contents"][0]["parts"][1] == {
        "inlineData": {"data": base64.urlsafe_b64encode(png_bytes()).decode(), "mime_type": "image/png"}
    }


def test_file_data_counts_as_an_image(fake: FakeGemini) -> None:
    file_part = {
        "fileData": {"mimeType": "image/png", "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/x"}
    }
    inline = {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}
    reply = ok_json(post(fake, {"contents": [user("two pics", file_part, inline)]}))
    assert reply["candidates"][0]["content"]["parts"] == [{"text": "You said: two pics (2 images)"}]


def test_image_endpoints(fake: FakeGemini) -> None:
    png = call("GET", f"{fake.base_url}/img/red.png")
    assert (png.status, png.headers["content-type"], png.body) == (200, "image/png", png_bytes())
    assert png.body.startswith(b"\x89PNG\r\n\x1a\n")
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    connection.request("GET", "/img/redirect")
    response = connection.getresponse()
    assert response.status == 302
    assert response.getheader("Location") == "/img/red.png"
    connection.close()
    followed = call("GET", f"{fake.base_url}/img/redirect")  # urllib follows the redirect
    assert (followed.status, followed.body) == (200, png_bytes())


# ---- function calling ------------------------------------------------------------------------------------------


def tools_config(**extra: Any) -> types.GenerateContentConfig:
    declaration = types.FunctionDeclaration(
        name="lookup_city",
        description="Find a city.",
        parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}),
    )
    return config(
        tools=[types.Tool(function_declarations=[declaration])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        **extra,
    )


@pytest.mark.parametrize(("directive", "count"), [("#fake:tools", 1), ("#fake:tools=2", 2)])
def test_function_calls(fake: FakeGemini, beta: genai.Client, directive: str, count: int) -> None:
    reply = beta.models.generate_content(model=MODEL, contents=f"weather? {directive}", config=tools_config())
    (candidate,) = reply.candidates
    assert candidate.finish_reason == types.FinishReason.STOP  # Gemini says STOP after a function call too
    parts = candidate.content.parts
    assert parts[0].text == TOOLS_PREAMBLE
    assert [(c.name, c.args, c.id) for c in reply.function_calls] == [
        ("lookup_city", {"city": "Paris", "n": i}, None) for i in range(count)
    ]
    assert reply.usage_metadata.candidates_token_count == 3 + 4 * count
    raw = ok_json(post(fake, {**body_of(directive), "tools": [{"functionDeclarations": [LOOKUP]}]}))
    strict(types.GenerateContentResponse, raw)
    assert raw["candidates"][0]["content"]["parts"][1] == {
        "functionCall": {"name": "lookup_city", "args": {"city": "Paris", "n": 0}}
    }


def test_function_call_without_declarations_is_get_weather(beta: genai.Client) -> None:
    reply = beta.models.generate_content(model=MODEL, contents="#fake:tools")
    assert [c.name for c in reply.function_calls] == ["get_weather"]


def test_function_responses_answer_the_calls_before(fake: FakeGemini) -> None:
    call_part = {"functionCall": {"name": "lookup_city", "args": {"city": "Paris", "n": 0}}}
    answer = {"functionResponse": {"name": "lookup_city", "response": {"result": "sunny"}}}
    body = {
        "contents": [user("weather? #fake:tools"), model_turn(TOOLS_PREAMBLE, call_part), user(answer)],
        "tools": [{"functionDeclarations": [LOOKUP]}],
    }
    reply = ok_json(post(fake, body))
    # The directive was in an earlier turn: the model now answers in text.
    assert reply["candidates"][0]["content"]["parts"] == [{"text": "You said:"}]
    two_calls = model_turn(call_part, call_part)
    short = {**body, "contents": [user("x"), two_calls, user(answer)]}
    refused = post(fake, short)
    assert refused.status == 400
    assert "number of function response parts is equal" in refused.json()["error"]["message"]
    assert post(fake, {**body, "contents": [user("x"), two_calls, user(answer, answer)]}).status == 200


def test_tool_config_modes(fake: FakeGemini) -> None:
    tools = [{"functionDeclarations": [LOOKUP]}]
    for mode in ("AUTO", "ANY", "NONE", "VALIDATED"):
        body = {**body_of("hi"), "tools": tools, "toolConfig": {"functionCallingConfig": {"mode": mode}}}
        assert post(fake, body).status == 200, mode
    allowed = {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup_city"]}}
    assert post(fake, {**body_of("hi"), "tools": tools, "toolConfig": allowed}).status == 200


def test_parameters_json_schema_without_extras_is_accepted(fake: FakeGemini) -> None:
    declaration = {"name": "f", "parametersJsonSchema": {"type": "object", "properties": {"a": {"type": "string"}}}}
    assert post(fake, {**body_of("hi"), "tools": [{"functionDeclarations": [declaration]}]}).status == 200


# ---- generation config -----------------------------------------------------------------------------------------


def test_json_mode(fake: FakeGemini, beta: genai.Client) -> None:
    reply = beta.models.generate_content(
        model=MODEL, contents="give me json", config=config(response_mime_type="application/json")
    )
    assert json.loads(reply.text) == {"answer": "yes", "n": 1}
    assert reply.text == JSON_REPLY
    assert reply.usage_metadata.candidates_token_count == 4
    by_directive = ok_json(post(fake, body_of("#fake:json")))
    assert by_directive["candidates"][0]["content"]["parts"] == [{"text": JSON_REPLY}]
    schema = {"type": "OBJECT", "properties": {"answer": {"type": "STRING"}}}
    with_schema = {"responseMimeType": "application/json", "responseSchema": schema}
    assert post(fake, body_of("x", generationConfig=with_schema)).status == 200


def test_thinking_shows_the_thought_when_asked(beta: genai.Client) -> None:
    thinking = types.ThinkingConfig(include_thoughts=True, thinking_budget=1024)
    reply = beta.models.generate_content(model=MODEL, contents="think hard", config=config(thinking_config=thinking))
    parts = reply.candidates[0].content.parts
    assert (parts[0].text, parts[0].thought) == (THINKING_TEXT, True)
    assert (parts[1].text, parts[1].thought) == ("You said: think hard", None)
    assert reply.text == "You said: think hard"  # the SDK leaves thoughts out of .text
    usage = reply.usage_metadata
    assert usage.thoughts_token_count == 5
    assert usage.candidates_token_count == 4
    assert usage.total_token_count == usage.prompt_token_count + 4 + 5


def test_thinking_budget_reports_thoughts_it_does_not_show(fake: FakeGemini, beta: genai.Client) -> None:
    thinking = types.ThinkingConfig(thinking_budget=512)
    reply = beta.models.generate_content(model=MODEL, contents="quietly", config=config(thinking_config=thinking))
    assert [p.thought for p in reply.candidates[0].content.parts] == [None]
    assert reply.usage_metadata.thoughts_token_count == 5
    off = beta.models.generate_content(
        model=MODEL, contents="no", config=config(thinking_config=types.ThinkingConfig(thinking_budget=0))
    )
    assert off.usage_metadata.thoughts_token_count is None
    directed = ok_json(post(fake, body_of("#fake:thinking hm")))
    assert directed["candidates"][0]["content"]["parts"][0] == {"text": THINKING_TEXT, "thought": True}
    assert directed["usageMetadata"]["thoughtsTokenCount"] == 5


def test_candidate_count(beta: genai.Client) -> None:
    reply = beta.models.generate_content(model=MODEL, contents="hi", config=config(candidate_count=2))
    assert [(c.index, c.content.parts[0].text, c.finish_reason) for c in reply.candidates] == [
        (0, "You said: hi", types.FinishReason.STOP),
        (1, "You said: hi #1", types.FinishReason.STOP),
    ]
    assert reply.usage_metadata.candidates_token_count == 3 + 4


def test_max_output_tokens_truncates(beta: genai.Client) -> None:
    reply = beta.models.generate_content(model=MODEL, contents="a b c d", config=config(max_output_tokens=3))
    assert reply.text == "You said: a"
    assert reply.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert reply.usage_metadata.candidates_token_count == 3


def test_stop_sequence_cuts_before_the_word(beta: genai.Client) -> None:
    reply = beta.models.generate_content(model=MODEL, contents="a b c d", config=config(stop_sequences=["c"]))
    assert reply.text == "You said: a b"
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata.candidates_token_count == 4


def test_cached_tokens_are_included_in_the_prompt_count(fake: FakeGemini) -> None:
    reply = ok_json(post(fake, body_of("#fake:cached=5 hi")))
    strict(types.GenerateContentResponse, reply)
    usage = reply["usageMetadata"]
    assert usage["cachedContentTokenCount"] == 5
    assert usage["promptTokenCount"] == prompt_tokens("#fake:cached=5 hi") + 5
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]


# ---- safety ----------------------------------------------------------------------------------------------------


def test_safety_finish_has_no_content(fake: FakeGemini, beta: genai.Client) -> None:
    reply = beta.models.generate_content(model=MODEL, contents="#fake:safety how to")
    (candidate,) = reply.candidates
    assert candidate.finish_reason == types.FinishReason.SAFETY
    assert candidate.content is None
    assert reply.text is None
    (rating,) = candidate.safety_ratings
    assert rating.category == types.HarmCategory.HARM_CATEGORY_DANGEROUS_CONTENT
    assert (rating.probability, rating.blocked) == (types.HarmProbability.HIGH, True)
    raw = ok_json(post(fake, body_of("#fake:safety")))
    strict(types.GenerateContentResponse, raw)
    assert raw["candidates"] == [{"finishReason": "SAFETY", "index": 0, "safetyRatings": SAFETY_RATINGS}]
    assert "candidatesTokenCount" not in raw["usageMetadata"]


def test_blocked_prompt_has_no_candidates(fake: FakeGemini, beta: genai.Client) -> None:
    reply = beta.models.generate_content(model=MODEL, contents="#fake:blocked")
    assert reply.candidates is None
    assert reply.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    assert reply.prompt_feedback.safety_ratings[0].blocked is True
    raw = post(fake, body_of("#fake:blocked"))
    data = ok_json(raw)
    strict(types.GenerateContentResponse, data)
    assert "candidates" not in data
    assert data["promptFeedback"] == {"blockReason": "SAFETY", "safetyRatings": SAFETY_RATINGS}
    assert data["usageMetadata"] == {"promptTokenCount": 7, "totalTokenCount": 7}


# ---- streaming -------------------------------------------------------------------------------------------------


def test_stream_with_the_sdk(fake: FakeGemini, gemini: genai.Client) -> None:
    completed = fake.state.completed_streams
    chunks = list(gemini.models.generate_content_stream(model=MODEL, contents="stream me please"))
    assert [c.text for c in chunks] == ["You", " said:", " stream", " me", " please"]
    assert [c.candidates[0].finish_reason for c in chunks] == [None] * 4 + [types.FinishReason.STOP]
    assert [c.usage_metadata.candidates_token_count for c in chunks] == [1, 2, 3, 4, 5]
    assert {c.usage_metadata.prompt_token_count for c in chunks} == {prompt_tokens("stream me please")}
    assert len({c.response_id for c in chunks}) == 1
    whole = gemini.models.generate_content(model=MODEL, contents="stream me please")
    assert chunks[-1].usage_metadata == whole.usage_metadata
    assert eventually(lambda: fake.state.completed_streams == completed + 1)


def test_sse_events_are_crlf_framed_one_per_write(fake: FakeGemini) -> None:
    events = sse_chunks(fake, body_of("#fake:chunks=2 a b c d"))
    assert [e["candidates"][0]["content"]["parts"] for e in events] == [
        [{"text": "You said: a"}],
        [{"text": " b c d"}],
    ]
    assert ["finishReason" in e["candidates"][0] for e in events] == [False, True]
    prompt = prompt_tokens("#fake:chunks=2 a b c d")
    assert events[0]["usageMetadata"] == {
        "promptTokenCount": prompt,
        "candidatesTokenCount": 3,
        "totalTokenCount": prompt + 3,
    }
    assert events[1]["usageMetadata"] == {
        "promptTokenCount": prompt,
        "candidatesTokenCount": 6,
        "totalTokenCount": prompt + 6,
    }
    assert all(e["modelVersion"] == MODEL and e["responseId"] == events[0]["responseId"] for e in events)


def test_stream_of_function_calls(fake: FakeGemini, beta: genai.Client) -> None:
    chunks = list(beta.models.generate_content_stream(model=MODEL, contents="#fake:tools=2", config=tools_config()))
    assert len(chunks) == 3
    assert [p.text for p in chunks[0].candidates[0].content.parts] == [TOOLS_PREAMBLE]
    assert [(p.function_call.name, p.function_call.args["n"]) for p in chunks[1].candidates[0].content.parts] == [
        ("lookup_city", 0),
        ("lookup_city", 1),
    ]
    assert chunks[2].candidates[0].content.parts is None
    assert [c.candidates[0].finish_reason for c in chunks] == [None, None, types.FinishReason.STOP]
    assert [c.usage_metadata.candidates_token_count for c in chunks] == [3, 11, 11]
    events = sse_chunks(fake, {**body_of("#fake:tools"), "tools": [{"functionDeclarations": [LOOKUP]}]})
    assert events[-1]["candidates"] == [{"content": {"role": "model"}, "finishReason": "STOP", "index": 0}]


def test_stream_of_thinking(fake: FakeGemini) -> None:
    thinking = {"thinkingConfig": {"includeThoughts": True}}
    events = sse_chunks(fake, body_of("go on", generationConfig=thinking))
    assert events[0]["candidates"][0]["content"]["parts"] == [{"text": THINKING_TEXT, "thought": True}]
    assert all(e["usageMetadata"]["thoughtsTokenCount"] == 5 for e in events)
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events[1:]) == "You said: go on"


def test_stream_of_candidates_and_max_tokens(fake: FakeGemini) -> None:
    events = sse_chunks(fake, body_of("a b c", generationConfig={"candidateCount": 2, "maxOutputTokens": 4}))
    texts: dict[int, str] = {}
    for event in events:
        for candidate in event["candidates"]:
            for part in candidate["content"].get("parts", []):
                texts[candidate["index"]] = texts.get(candidate["index"], "") + part["text"]
    assert texts == {0: "You said: a b", 1: "You said: a b"}
    assert [c["finishReason"] for c in events[-1]["candidates"]] == ["MAX_TOKENS", "MAX_TOKENS"]
    assert all("finishReason" not in c for e in events[:-1] for c in e["candidates"])
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 8


def test_stream_of_safety_and_blocked(fake: FakeGemini) -> None:
    (safety,) = sse_chunks(fake, body_of("#fake:safety"))
    assert safety["candidates"][0]["finishReason"] == "SAFETY"
    (blocked,) = sse_chunks(fake, body_of("#fake:blocked"))
    assert "candidates" not in blocked and blocked["promptFeedback"]["blockReason"] == "SAFETY"


def test_json_array_stream_without_alt_sse(fake: FakeGemini) -> None:
    head, rest = raw_exchange(fake, STREAM, body_of("#fake:chunks=3 a b c d e"))
    assert head.startswith("HTTP/1.1 200")
    assert "content-type: application/json" in head.lower()
    writes = http_chunks(rest)
    assert writes[0].startswith(b"[{") and writes[-1] == b"\r\n]"
    assert all(w.startswith(b"\r\n,{") for w in writes[1:-1])
    body = b"".join(writes)
    elements = json.loads(body)
    assert len(elements) == len(writes) - 1 == 3
    for element in elements:
        strict(types.GenerateContentResponse, element)
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in elements) == "You said: a b c d e"
    assert elements[-1]["candidates"][0]["finishReason"] == "STOP"


def test_cut_drops_the_connection(fake: FakeGemini, beta: genai.Client) -> None:
    received: list[str] = []
    with pytest.raises(Exception, match="incomplete chunked read") as raised:
        for chunk in beta.models.generate_content_stream(model=MODEL, contents="#fake:cut a b c d"):
            received.append(chunk.text)
    assert not isinstance(raised.value, errors.APIError)
    assert received == ["You", " said:"]
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    connection.request("POST", STREAM + "?alt=sse", json.dumps(body_of("#fake:cut a b c")), HEADERS)
    with pytest.raises(http.client.IncompleteRead) as incomplete:
        connection.getresponse().read()
    connection.close()
    assert incomplete.value.partial.count(b"data: ") == 2
    assert b"finishReason" not in incomplete.value.partial


def test_slow_stream_counts_the_client_leaving(fake: FakeGemini, beta: genai.Client) -> None:
    cancelled = fake.state.cancelled_streams
    stream = beta.models.generate_content_stream(model=MODEL, contents="#fake:slow")
    assert next(stream).text == " tick"
    stream.close()
    assert eventually(lambda: fake.state.cancelled_streams == cancelled + 1)
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    connection.request("POST", STREAM, json.dumps(body_of("#fake:slow")), HEADERS)
    response = connection.getresponse()
    assert response.read1(65536).startswith(b'[{"candidates"')  # the array form streams element by element
    response.close()
    connection.close()
    assert eventually(lambda: fake.state.cancelled_streams == cancelled + 2)


def test_sleep_delays_the_answer(fake: FakeGemini, beta: genai.Client) -> None:
    started = time.monotonic()
    beta.models.generate_content(model=MODEL, contents="#fake:sleep=0.3 late")
    assert time.monotonic() - started >= 0.3
    impatient = client_for(fake, timeout=200)  # milliseconds
    with pytest.raises(Exception, match=r"(?i)timed? ?out") as raised:
        impatient.models.generate_content(model=MODEL, contents="#fake:sleep=1 too late")
    assert not isinstance(raised.value, errors.APIError)


# ---- countTokens and models ------------------------------------------------------------------------------------


def test_count_tokens_matches_the_prompt_count(fake: FakeGemini, gemini: genai.Client) -> None:
    counted = gemini.models.count_tokens(model=MODEL, contents="count these four words")
    generated = gemini.models.generate_content(model=MODEL, contents="count these four words")
    assert counted.total_tokens == generated.usage_metadata.prompt_token_count == prompt_tokens("a b c d")
    raw = ok_json(post(fake, {"contents": [user("count me")]}, COUNT))
    assert raw == {"totalTokens": prompt_tokens("count me")}
    strict(types.CountTokensResponse, raw)


def test_count_tokens_of_a_generate_content_request(fake: FakeGemini) -> None:
    inner = {
        "model": f"models/{MODEL}",
        "contents": [user("hello"), model_turn("hi there"), user("again")],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "tools": [{"functionDeclarations": [LOOKUP]}],
    }
    raw = ok_json(post(fake, {"generateContentRequest": inner}, COUNT))
    assert raw == {"totalTokens": prompt_tokens("hello", "hi there", "again", system="be brief")}
    no_model = post(fake, {"generateContentRequest": {**inner, "model": MODEL}}, COUNT)
    assert no_model.status == 400 and "model name format" in no_model.json()["error"]["message"]
    both = post(fake, {"contents": [user("x")], "generateContentRequest": inner}, COUNT)
    assert both.status == 400 and "cannot both be set" in both.json()["error"]["message"]
    bad = post(fake, {"generateContentRequest": {**inner, "messages": []}}, COUNT)
    assert bad.status == 400 and 'Unknown name "messages"' in bad.json()["error"]["message"]


def test_count_tokens_honours_error_directives(beta: genai.Client) -> None:
    with pytest.raises(errors.ServerError) as raised:
        beta.models.count_tokens(model=MODEL, contents="#fake:error=503")
    assert (raised.value.code, raised.value.status) == (503, "UNAVAILABLE")


def test_models_list_with_the_sdk(gemini: genai.Client) -> None:
    listed = list(gemini.models.list())
    assert [m.name for m in listed] == [m["name"] for m in MODELS]
    flash = listed[0]
    assert flash.name == "models/gemini-2.0-flash"
    assert flash.supported_actions == ["generateContent", "countTokens"]
    assert (flash.input_token_limit, flash.output_token_limit) == (1048576, 8192)
    assert flash.display_name == "Gemini 2.0 Flash"
    paged = list(gemini.models.list(config={"page_size": 3}))  # the pager follows nextPageToken
    assert [m.name for m in paged] == [m.name for m in listed]


def test_models_list_raw_shape(fake: FakeGemini) -> None:
    reply = call("GET", f"{fake.base_url}/v1beta/models", headers=HEADERS)
    data = ok_json(reply)
    assert set(data) == {"models"}
    for model in data["models"]:
        assert set(model) <= MODEL_WIRE_KEYS, set(model) - MODEL_WIRE_KEYS
        assert {"name", "displayName", "supportedGenerationMethods", "inputTokenLimit", "outputTokenLimit"} <= set(
            model
        )
        converted = _Model_from_mldev(model)
        # The converter copies the whole object into tuned_model_info; the SDK then drops what that type lacks.
        converted.pop("tuned_model_info")
        assert strict(types.Model, converted).supported_actions == model["supportedGenerationMethods"]
    first_page = ok_json(call("GET", f"{fake.base_url}/v1/models?pageSize=1", headers=HEADERS))
    assert [m["name"] for m in first_page["models"]] == ["models/gemini-2.0-flash"]
    assert first_page["nextPageToken"]
    one = ok_json(call("GET", f"{fake.base_url}/v1beta/models/gemini-2.5-pro", headers=HEADERS))
    assert one["name"] == "models/gemini-2.5-pro"
    missing = call("GET", f"{fake.base_url}/v1beta/models/gemini-nope", headers=HEADERS)
    assert missing.status == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_get_model_with_the_sdk(beta: genai.Client) -> None:
    model = beta.models.get(model="gemini-2.5-flash")
    assert (model.name, model.thinking, model.output_token_limit) == ("models/gemini-2.5-flash", True, 65536)


# ---- errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_class", "status"),
    [
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (401, errors.ClientError, "UNAUTHENTICATED"),
        (403, errors.ClientError, "PERMISSION_DENIED"),
        (404, errors.ClientError, "NOT_FOUND"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
        (504, errors.ServerError, "DEADLINE_EXCEEDED"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_directives(
    beta: genai.Client, code: int, error_class: type[Exception], status: str, stream: bool
) -> None:
    contents = f"#fake:error={code} please"
    with pytest.raises(errors.APIError) as raised:
        if stream:
            list(beta.models.generate_content_stream(model=MODEL, contents=contents))
        else:
            beta.models.generate_content(model=MODEL, contents=contents)
    error = raised.value
    assert type(error) is error_class
    assert (error.code, error.status) == (code, status)
    assert error.message
    body = error.details["error"]
    assert set(body) <= {"code", "message", "status", "details"}
    assert (body["code"], body["status"]) == (code, status)
    assert (GEMINI_UPSTREAM_SECRET in error.message) is (code == 401)
    retry = [d for d in body.get("details", []) if d["@type"].endswith("RetryInfo")]
    assert (retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]) is (code == 429)
    if code == 404:
        assert f"models/{MODEL} is not found for API version v1beta" in error.message


CALL = {"functionCall": {"name": "lookup_city", "args": {"city": "Paris"}}}
ANSWER = {"functionResponse": {"name": "lookup_city", "response": {"ok": True}}}
INLINE = {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}


def with_tool(parameters: dict[str, Any], key: str = "parameters") -> dict[str, Any]:
    return {**body_of("hi"), "tools": [{"functionDeclarations": [{"name": "f", key: parameters}]}]}


def obj(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}, "Please use a valid role: user, model."),
        ({"contents": [{"role": "system", "parts": [{"text": "hi"}]}, user("x")]}, "valid role: user, model"),
        ({"contents": [{"role": "tool", "parts": [{"text": "hi"}]}]}, "valid role: user, model"),
        ({"contents": [{"parts": [{"text": "hi"}]}]}, "valid role: user, model"),
        ({**body_of("hi"), "messages": []}, 'Unknown name "messages": Cannot find field.'),
        ({**body_of("hi"), "model": MODEL}, 'Unknown name "model"'),
        (
            {**body_of("hi"), "generationConfig": {"max_tokens": 5}},
            "Unknown name \"max_tokens\" at 'generation_config'",
        ),
        ({**body_of("hi"), "generation_config": {"max_output_tokens": 5, "maxOutputTokens": 5}}, "Duplicate value"),
        ({**body_of("hi"), "generation_config": {"max_tokens": 5}}, 'Unknown name "max_tokens"'),
        ({"contents": []}, "contents is not specified"),
        ({}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "contents.parts must not be empty"),
        ({"contents": [user("")]}, "required oneof field 'data'"),
        ({"contents": [{"role": "user", "parts": [{}]}]}, "required oneof field 'data'"),
        ({"contents": [user({"text": "a", "inlineData": INLINE["inlineData"]})]}, "oneof field 'data' is already set"),
        ({"contents": [user({"type": "text", "text": "hi"})]}, "Unknown name \"type\" at 'contents[0].parts[0]'"),
        ({"contents": [user("hi", {"image_url": {"url": "http://x"}})]}, 'Unknown name "image_url"'),
        ({"contents": [{"role": "user", "content": "hi"}]}, 'Unknown name "content"'),
        ({"contents": [user("a"), {"role": "model", "parts": [], "tool_calls": []}]}, 'Unknown name "tool_calls"'),
        (
            {"contents": [user({"inlineData": {"mimeType": "image/png", "data": "data:image/png;base64,iVBO"}})]},
            "Base64",
        ),
        ({"contents": [user({"inlineData": {"data": PNG_B64}})]}, "mime_type"),
        (
            {"contents": [user({"inlineData": INLINE["inlineData"], "thought": True})]},
            "only text parts can be thoughts",
        ),
        ({"contents": [user("hi"), user(ANSWER)]}, "function response turn comes immediately after a function call"),
        ({"contents": [user(ANSWER)]}, "function response turn comes immediately after a function call turn"),
        (
            {
                "contents": [
                    user("a"),
                    model_turn(CALL),
                    user({"functionResponse": {**ANSWER["functionResponse"], "name": "other"}}),
                ]
            },
            "function response 'other' answers no function call",
        ),
        ({"contents": [model_turn(CALL)]}, "function call turn comes immediately after a user turn"),
        ({"contents": [user(CALL)]}, "function call turn comes immediately after a user turn"),
        (
            {"contents": [user("a"), model_turn({"functionCall": {"name": "f", "args": '{"city": "Paris"}'}})]},
            "function_call.args' (type.googleapis.com/google.protobuf.Struct)",
        ),
        (
            {
                "contents": [
                    user("a"),
                    model_turn(CALL),
                    user({"functionResponse": {"name": "lookup_city", "response": "sunny"}}),
                ]
            },
            "function_response.response' (type.googleapis.com/google.protobuf.Struct)",
        ),
        ({**body_of("hi"), "systemInstruction": "be nice"}, "Invalid value at 'system_instruction'"),
        (
            {**body_of("hi"), "systemInstruction": {"parts": [{"inlineData": INLINE["inlineData"]}]}},
            'Unknown name "inlineData"',
        ),
        (with_tool(obj(a={"type": "object", "additionalProperties": False})), 'Unknown name "additionalProperties"'),
        (
            with_tool({**obj(a={"type": "string"}), "additionalProperties": False}),
            'Unknown name "additionalProperties"',
        ),
        (with_tool({**obj(), "$schema": "http://json-schema.org/draft-07/schema#"}), 'Unknown name "$schema"'),
        (with_tool(obj(a={"$ref": "#/$defs/A"})), 'Unknown name "$ref"'),
        (with_tool({**obj(), "$defs": {"A": {"type": "string"}}}), 'Unknown name "$defs"'),
        (with_tool(obj(a={"type": "array", "items": {"const": "x"}})), 'Unknown name "const"'),
        (with_tool(obj(a={"anyOf": [{"type": "string"}, {"const": 1}]})), 'Unknown name "const"'),
        (with_tool(obj(a={"type": ["string", "null"]})), "Proto field is not repeating, cannot start list"),
        (
            with_tool({**obj(), "additionalProperties": False}, "parametersJsonSchema"),
            'Unknown name "additionalProperties"',
        ),
        (
            with_tool(obj(a={"type": "str"})),
            "Invalid value at 'tools[0].function_declarations[0].parameters.properties[a].type'",
        ),
        (
            {**body_of("hi"), "tools": [{"type": "function", "function": {"name": "f"}}]},
            "Unknown name \"type\" at 'tools[0]'",
        ),
        ({**body_of("hi"), "tools": [{"functionDeclarations": [{"name": "1bad name"}]}]}, "Invalid function name"),
        ({**body_of("hi"), "tools": [{"functionDeclarations": [LOOKUP, LOOKUP]}]}, "Duplicate function declaration"),
        ({**body_of("hi"), "tool_choice": "auto"}, 'Unknown name "tool_choice"'),
        (
            {**body_of("hi"), "toolConfig": {"functionCallingConfig": {"mode": "REQUIRED"}}},
            "function_calling_config.mode",
        ),
        (
            {
                **body_of("hi"),
                "tools": [{"functionDeclarations": [LOOKUP]}],
                "toolConfig": {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["lookup_city"]}},
            },
            "only allowed when mode is ANY",
        ),
        (
            {
                **body_of("hi"),
                "tools": [{"functionDeclarations": [LOOKUP]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}},
            },
            "function 'nope' is not declared",
        ),
        (body_of("hi", generationConfig={"temperature": 2.5}), "temperature must be in the range [0, 2]"),
        (body_of("hi", generationConfig={"temperature": "hot"}), "generation_config.temperature' (TYPE_FLOAT)"),
        (body_of("hi", generationConfig={"candidateCount": 9}), "candidateCount must be in the range [1, 8]"),
        (body_of("hi", generationConfig={"maxOutputTokens": 0}), "maxOutputTokens must be in the range"),
        (body_of("hi", generationConfig={"stopSequences": "stop"}), "stop_sequences' is repeating"),
        (body_of("hi", generationConfig={"responseMimeType": "application/jsonl"}), "allowed mimetypes are"),
        (body_of("hi", generationConfig={"responseSchema": {"type": "OBJECT"}}), "a response schema needs"),
        (
            body_of(
                "hi",
                generationConfig={
                    "responseMimeType": "application/json",
                    "responseSchema": {**obj(), "additionalProperties": False},
                },
            ),
            "Unknown name \"additionalProperties\" at 'generation_config.response_schema'",
        ),
        (body_of("hi", generationConfig={"thinkingConfig": {"budget_tokens": 5}}), 'Unknown name "budget_tokens"'),
        (
            body_of("hi", generationConfig={"thinkingConfig": {"includeThoughts": "yes"}}),
            "include_thoughts' (TYPE_BOOL)",
        ),
        (body_of("hi", safetySettings=[{"category": "HARM_CATEGORY_NOPE", "threshold": "BLOCK_NONE"}]), "category"),
        (body_of("hi", cachedContent="abc"), "cachedContents/{cachedContent}"),
    ],
)
def test_strict_validation(fake: FakeGemini, body: dict[str, Any], message_part: str) -> None:
    reply = post(fake, body)
    assert reply.status == 400, reply.body
    error = reply.json()["error"]
    assert set(error) == {"code", "message", "status"}
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert message_part in error["message"]


def test_accepted_extras_of_the_real_api(fake: FakeGemini) -> None:
    history = [
        user("a"),
        model_turn({"text": "hmm", "thought": True}, {**CALL, "thoughtSignature": "c2lnbmF0dXJl"}),
        user(ANSWER, "now answer"),
    ]
    body = {
        "contents": history,
        "systemInstruction": {"role": "user", "parts": [{"text": "brief"}]},
        "tools": [{"functionDeclarations": [LOOKUP]}, {"googleSearch": {}}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "cachedContent": "cachedContents/abc123",
        "generationConfig": {
            "temperature": 0,
            "topP": 0.9,
            "topK": 40,
            "candidateCount": 1,
            "maxOutputTokens": 100,
            "stopSequences": ["zzz"],
            "presencePenalty": 0.1,
            "frequencyPenalty": 0.1,
            "seed": 7,
            "responseLogprobs": True,
            "logprobs": 3,
            "thinkingConfig": {"thinkingBudget": 0},
        },
    }
    reply = ok_json(post(fake, body))
    assert reply["candidates"][0]["content"]["parts"] == [{"text": "You said: now answer"}]


def test_snake_case_field_names_are_accepted_as_proto3_json_allows(fake: FakeGemini) -> None:
    """Google parses requests as proto3 JSON: a field may be spelled by its snake_case name too (the SDK itself
    sends inlineData.mime_type), but the keys of a Struct (function args) or a properties map are data."""
    body = {
        "contents": [
            user("snake", {"inline_data": {"mime_type": "image/png", "data": PNG_B64}}),
            model_turn({"function_call": {"name": "f", "args": {"city_name": "Paris"}}}),
            user({"function_response": {"name": "f", "response": {"max_tokens": 1}}}, "now"),
        ],
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "tools": [
            {
                "function_declarations": [
                    {"name": "f", "parameters": {"type": "OBJECT", "properties": {"city_name": {"max_length": 9}}}}
                ]
            }
        ],
        "generation_config": {"max_output_tokens": 3, "thinking_config": {"include_thoughts": True}},
    }
    reply = ok_json(post(fake, body))
    parts = reply["candidates"][0]["content"]["parts"]
    assert parts == [{"text": THINKING_TEXT, "thought": True}, {"text": "You said: now"}]
    assert reply["candidates"][0]["finishReason"] == "STOP"
    assert reply["usageMetadata"]["promptTokenCount"] == prompt_tokens("snake", "", "now", system="be brief")
    truncated = ok_json(post(fake, body_of("a b c d", generation_config={"max_output_tokens": 3})))
    assert truncated["candidates"][0]["finishReason"] == "MAX_TOKENS"


def test_strict_validation_through_the_sdk(beta: genai.Client) -> None:
    declaration = types.FunctionDeclaration(
        name="f", parameters_json_schema={"type": "object", "properties": {}, "additionalProperties": False}
    )
    with pytest.raises(errors.ClientError) as raised:
        beta.models.generate_content(
            model=MODEL,
            contents="hi",
            config=config(
                tools=[types.Tool(function_declarations=[declaration])],
                automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            ),
        )
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    assert 'Unknown name "additionalProperties"' in raised.value.message


def test_unknown_version_and_method_are_404(fake: FakeGemini) -> None:
    for path in (f"/v2/models/{MODEL}:generateContent", f"/v1beta/models/{MODEL}:embedContent", "/v1beta/chat"):
        reply = post(fake, body_of("hi"), path)
        assert reply.status == 404, path
        assert reply.json()["error"]["status"] == "NOT_FOUND"


def test_bad_json_is_400(fake: FakeGemini) -> None:
    reply = call("POST", f"{fake.base_url}{GENERATE}", headers=HEADERS, raw=b"{not json")
    assert reply.status == 400 and reply.json()["error"]["status"] == "INVALID_ARGUMENT"


# ---- auth ------------------------------------------------------------------------------------------------------


def test_key_in_header_or_query_is_accepted(fake: FakeGemini) -> None:
    assert post(fake, body_of("hi")).status == 200
    by_query = post(fake, body_of("query-key-marker"), f"{GENERATE}?key={GEMINI_UPSTREAM_SECRET}", headers={})
    assert by_query.status == 200
    (received,) = fake.requests_with("query-key-marker")
    assert received.path == f"{GENERATE}?key={GEMINI_UPSTREAM_SECRET}"
    listed = call("GET", f"{fake.base_url}/v1beta/models?key={GEMINI_UPSTREAM_SECRET}")
    assert listed.status == 200


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (GENERATE, {}),
        (GENERATE, {"x-goog-api-key": "AIzaWRONG"}),
        (f"{GENERATE}?key=AIzaWRONG", {}),
        # The header decides when both are sent.
        (f"{GENERATE}?key={GEMINI_UPSTREAM_SECRET}", {"x-goog-api-key": "AIzaWRONG"}),
        (STREAM + "?alt=sse", {"x-goog-api-key": "AIzaWRONG"}),
        (COUNT, {"x-goog-api-key": "AIzaWRONG"}),
    ],
)
def test_missing_or_wrong_key_is_400(fake: FakeGemini, path: str, headers: dict[str, str]) -> None:
    reply = post(fake, body_of("hi"), path, headers)
    assert reply.status == 400
    error = reply.json()["error"]
    assert (error["code"], error["status"], error["message"]) == (400, "INVALID_ARGUMENT", INVALID_KEY_MESSAGE)
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert GEMINI_UPSTREAM_SECRET not in reply.body.decode()
    listed = call("GET", f"{fake.base_url}/v1beta/models", headers=headers)
    assert listed.status == 400


def test_sdk_with_a_wrong_key_gets_client_error(fake: FakeGemini) -> None:
    wrong = client_for(fake, key="AIzaWRONG-key")
    with pytest.raises(errors.ClientError) as raised:
        wrong.models.generate_content(model=MODEL, contents="hi")
    assert (raised.value.code, raised.value.status, raised.value.message) == (
        400,
        "INVALID_ARGUMENT",
        INVALID_KEY_MESSAGE,
    )
