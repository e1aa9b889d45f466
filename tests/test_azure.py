"""Azure OpenAI channels (`type: azure`): the gateway's users keep the plain openai (or anthropic) SDK and a
gateway key; the gateway calls the fake Azure resource on deployment URLs with `api-version` and `api-key`,
relays Azure's replies (content filter annotations included) and bills them exactly.

The URL builder, the headers and Azure's stream shapes are also tested as pure functions at the end.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import subprocess
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import orjson
import pytest
from anthropic import Anthropic
from openai import OpenAI
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from llmrelay.config import ChannelConfig
from llmrelay.formats.base import upstream_error_message
from llmrelay.formats.openai import OpenAIStreamTap, OpenAIToChatStream
from llmrelay.metering.pricing import BUILTIN_PRICES, Usage
from llmrelay.providers import PROVIDERS
from llmrelay.providers.azure import AzureOpenAIProvider, azure_root, deployment_url
from llmrelay.providers.base import Capability
from llmrelay.surfaces.multipart import parse_multipart
from llmrelay.surfaces.openai.chat import parse_chat_request
from tests.conftest import CHANNEL_HEADER_SECRET, Gateway, call, make_gateway, wait_until
from tests.fakes.azure_upstream import (
    AZURE_UPSTREAM_SECRET,
    CONTENT_FILTER_RESULTS,
    CONTENT_FILTERED,
    PROMPT_FILTER_RESULTS,
    AzureCall,
    FakeAzureOpenAI,
)
from tests.fakes.openai_upstream import encode_multipart, prompt_tokens_of, speech_audio, transcript_text, wav_bytes
from tests.test_billing import record_for
from tests.test_docs_examples import examples, localise

DEPLOYED = {
    *("prod-gpt4o", "gpt-4o-mini", "legacy-mini", "gpt-35-turbo-instruct", "embed-small"),
    *("dall-e-3", "tts-1", "whisper-1"),
}
AZURE_API_VERSION = "2024-10-21"
OLD_API_VERSION = "2024-06-01"  # before stream_options existed on Azure


def azure_config(azure: FakeAzureOpenAI) -> str:
    # The first channel's base URL is pasted as the portal's sample URLs show it (with /openai/).
    return f"""
channels:
  - name: azure
    type: azure
    base_url: {azure.base_url}/openai/
    api_key: ${{FAKE_AZURE_KEY}}
    models: [gpt-4o, gpt-4o-mini, gpt-3.5-turbo-instruct, text-embedding-3-small, dall-e-3, dall-e-2, tts-1,
             whisper-1, omni-moderation-latest, gpt-4-turbo]
    deployments: {{gpt-4o: prod-gpt4o, gpt-3.5-turbo-instruct: gpt-35-turbo-instruct,
                   text-embedding-3-small: embed-small}}
    headers: {{X-Channel-Secret: {CHANNEL_HEADER_SECRET}}}
    timeout: {{connect: 2, read: 5}}
  - name: azure-old
    type: azure
    base_url: {azure.base_url}
    api_key: ${{FAKE_AZURE_KEY}}
    api_version: "{OLD_API_VERSION}"
    models: [old-mini]
    model_map: {{old-mini: gpt-4o-mini}}
    deployments: {{gpt-4o-mini: legacy-mini}}
  - name: azure-wrong-key
    type: azure
    base_url: {azure.base_url}
    api_key: wrong-azure-key-0000
    models: [wrong-key-model]
    model_map: {{wrong-key-model: gpt-4o-mini}}
  - name: azure-busy                # answers 429 with Retry-After: kept apart so no other test waits on it
    type: azure
    base_url: {azure.base_url}
    api_key: ${{FAKE_AZURE_KEY}}
    models: [busy-model]
    model_map: {{busy-model: gpt-4o-mini}}
"""


@pytest.fixture(scope="module")
def azure() -> Iterator[FakeAzureOpenAI]:
    fake = FakeAzureOpenAI(DEPLOYED).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def azure_gateway(tmp_path_factory: pytest.TempPathFactory, azure: FakeAzureOpenAI) -> Iterator[Gateway]:
    gateway = make_gateway(tmp_path_factory.mktemp("azure-gateway"), azure)
    gateway.config_path.write_text(azure_config(azure))
    gateway.env["FAKE_AZURE_KEY"] = AZURE_UPSTREAM_SECRET
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def azure_key(azure_gateway: Gateway) -> str:
    return azure_gateway.create_key("azure-user", quota_usd="20")


@pytest.fixture(scope="module")
def client(azure_gateway: Gateway, azure_key: str) -> OpenAI:
    return OpenAI(api_key=azure_key, base_url=azure_gateway.base_url, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def claude(azure_gateway: Gateway, azure_key: str) -> Anthropic:
    return Anthropic(api_key=azure_key, base_url=azure_gateway.url, max_retries=0, timeout=30)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def azure_call(azure: FakeAzureOpenAI, marker: str) -> AzureCall:
    calls = azure.calls_with(marker)
    assert calls, f"no call to the Azure fake carried {marker!r}"
    return calls[-1]


def assert_azure_auth(sent: AzureCall, client_key: str) -> None:
    """The resource key went in `api-key`, nothing went as Authorization, and the client's key stayed home."""
    headers = {name.lower(): value for name, value in sent.headers.items()}
    assert headers["api-key"] == AZURE_UPSTREAM_SECRET
    assert "authorization" not in headers
    assert not any(client_key in value for value in headers.values())


def nano_per(model: str, field: str) -> Decimal:
    """A built-in price, per token (or character, or second), in nano-dollars."""
    price = Decimal(str(BUILTIN_PRICES[model][field]))
    per_unit = {"per_million_characters": Decimal(10**6), "per_minute": Decimal(60)}.get(field, Decimal(10**6))
    return price * 10**9 / per_unit


def chat_cost(model: str, prompt: int, completion: int) -> int:
    return int(prompt * nano_per(model, "input") + completion * nano_per(model, "output"))


def billed(gateway: Gateway, request_id: str) -> dict[str, Any]:
    record = wait_until(lambda: record_for(gateway, request_id))
    assert record is not None, f"no usage record for {request_id}"
    return record


# ---------------------------------------------------------------------------------- chat, OpenAI clients


def test_chat_is_forwarded_as_sent_to_the_mapped_deployment(
    azure_gateway: Gateway, azure_key: str, azure: FakeAzureOpenAI
) -> None:
    raw = json.dumps({"messages": user("hello azure  az-chat-1"), "model": "gpt-4o", "temperature": 0.5}, indent=1)
    headers = {"Authorization": f"Bearer {azure_key}", "Content-Type": "application/json"}
    reply = call("POST", f"{azure_gateway.base_url}/chat/completions", raw=raw.encode(), headers=headers)
    assert reply.status == 200, reply.body
    completion = ChatCompletion.model_validate(reply.json())
    assert completion.choices[0].message.content == "You said: hello azure az-chat-1"
    # Azure's annotations reach the client as Azure sent them.
    assert reply.json()["prompt_filter_results"] == PROMPT_FILTER_RESULTS
    assert reply.json()["choices"][0]["content_filter_results"] == CONTENT_FILTER_RESULTS

    sent = azure_call(azure, "az-chat-1")
    assert (sent.deployment, sent.endpoint, sent.api_version) == ("prod-gpt4o", "/chat/completions", AZURE_API_VERSION)
    assert sent.raw == raw.encode()  # not re-encoded: indentation and key order kept
    assert_azure_auth(sent, azure_key)
    assert sent.headers["X-Channel-Secret"] == CHANNEL_HEADER_SECRET  # the channel's own headers still go

    prompt = prompt_tokens_of(user("hello azure  az-chat-1"))
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (prompt, 5)
    record = billed(azure_gateway, reply.headers["x-request-id"])
    assert (record["channel"], record["model"], record["usage_source"]) == ("azure", "gpt-4o", "upstream")
    assert record["cost_nano"] == chat_cost("gpt-4o", prompt, 5)


def test_a_model_without_a_deployment_entry_uses_its_own_name(client: OpenAI, azure: FakeAzureOpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=user("own name az-chat-2"))
    assert reply.choices[0].message.content == "You said: own name az-chat-2"
    assert azure_call(azure, "az-chat-2").deployment == "gpt-4o-mini"


def test_an_unknown_deployment_is_azures_404(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4-turbo", messages=user("no deployment az-chat-3"))
    assert "deployment for this resource does not exist" in caught.value.message


@pytest.mark.parametrize("include_usage", [True, False])
def test_stream_relays_azures_chunks_and_bills_the_reported_usage(
    azure_gateway: Gateway, client: OpenAI, azure: FakeAzureOpenAI, include_usage: bool
) -> None:
    marker = f"az-stream-{include_usage}"
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=user(f"stream on azure {marker} #fake:chunks=3"), stream=True, **options
    ) as response:
        request_id = response.headers["x-request-id"]
        chunks = list(response.parse())
    opening, *rest = chunks
    assert opening.choices == [] and opening.model_extra["prompt_filter_results"] == PROMPT_FILTER_RESULTS
    text = "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert text == f"You said: stream on azure {marker}"
    assert all(c.choices[0].model_extra["content_filter_results"] == CONTENT_FILTER_RESULTS for c in rest if c.choices)

    sent = azure_call(azure, marker)
    assert sent.json["stream_options"] == {"include_usage": True}  # asked for when the client did not
    prompt = prompt_tokens_of(user(f"stream on azure {marker} #fake:chunks=3"))
    if include_usage:
        assert rest[-1].usage is not None and rest[-1].choices == []
        assert (rest[-1].usage.prompt_tokens, rest[-1].usage.completion_tokens) == (prompt, 6)
    else:
        assert all(c.usage is None for c in chunks)
    record = billed(azure_gateway, request_id)
    assert (record["prompt_tokens"], record["completion_tokens"], record["usage_source"]) == (prompt, 6, "upstream")
    assert record["cost_nano"] == chat_cost("gpt-4o", prompt, 6)


def test_an_api_version_without_stream_options_is_counted_by_the_tokenizer(
    azure_gateway: Gateway, client: OpenAI, azure: FakeAzureOpenAI
) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="old-mini", messages=user("older version az-old-1"), stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "You said: older version az-old-1"
    sent = azure_call(azure, "az-old-1")
    assert (sent.deployment, sent.api_version) == ("legacy-mini", OLD_API_VERSION)  # model_map, then deployments
    assert "stream_options" not in sent.json and sent.json["model"] == "gpt-4o-mini"
    record = billed(azure_gateway, request_id)
    assert record["usage_source"] == "tokenizer" and record["channel"] == "azure-old"
    assert record["completion_tokens"] > 0
    assert record["cost_nano"] == chat_cost("gpt-4o-mini", record["prompt_tokens"], record["completion_tokens"])


def test_the_azure_key_never_reaches_the_client(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=user("echo your key #fake:leak"))
    content = reply.choices[0].message.content or ""
    assert AZURE_UPSTREAM_SECRET not in content and CHANNEL_HEADER_SECRET not in content
    with client.chat.completions.create(model="gpt-4o", messages=user("stream key #fake:leak"), stream=True) as stream:
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed.startswith("You said: stream key")
    assert AZURE_UPSTREAM_SECRET not in streamed and CHANNEL_HEADER_SECRET not in streamed


def test_a_rejected_resource_key_is_the_gateways_problem_not_the_clients(client: OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="wrong-key-model", messages=user("wrong key az-401"))
    assert caught.value.status_code == 502  # not 401: the client's own key is fine
    assert "Access denied due to invalid subscription key" in caught.value.message


def test_azure_errors_keep_their_status_and_message_and_bill_nothing(azure_gateway: Gateway, client: OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="busy-model", messages=user("busy #fake:error=429"))
    assert "exceeded token rate limit" in limited.value.message
    with pytest.raises(openai.BadRequestError) as filtered:
        client.chat.completions.create(model="gpt-4o", messages=user("blocked #fake:filter"))
    assert filtered.value.body["message"] == CONTENT_FILTERED  # the SDK reads `error`
    record = billed(azure_gateway, filtered.value.response.headers["x-request-id"])
    assert record["cost_nano"] == 0


# ------------------------------------------------------------------------------- the other OpenAI endpoints


def test_embeddings_on_the_mapped_deployment(
    azure_gateway: Gateway, client: OpenAI, azure_key: str, azure: FakeAzureOpenAI
) -> None:
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="embed az-embed-1 three")
    reply = raw.parse()
    assert len(reply.data) == 1 and reply.usage.prompt_tokens == 3
    sent = azure_call(azure, "az-embed-1")
    assert (sent.deployment, sent.endpoint, sent.api_version) == ("embed-small", "/embeddings", AZURE_API_VERSION)
    assert_azure_auth(sent, azure_key)
    record = billed(azure_gateway, raw.headers["x-request-id"])
    assert record["cost_nano"] == 3 * nano_per("text-embedding-3-small", "input")


def test_legacy_completions_stream_on_the_mapped_deployment(
    azure_gateway: Gateway, client: OpenAI, azure: FakeAzureOpenAI
) -> None:
    with client.completions.with_streaming_response.create(
        model="gpt-3.5-turbo-instruct", prompt="complete az-cmpl-1", stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        text = "".join(c.choices[0].text for c in response.parse() if c.choices)
    assert text == "You said: complete az-cmpl-1"
    sent = azure_call(azure, "az-cmpl-1")
    assert (sent.deployment, sent.endpoint) == ("gpt-35-turbo-instruct", "/completions")
    assert sent.json["stream_options"] == {"include_usage": True}
    record = billed(azure_gateway, request_id)
    assert (record["prompt_tokens"], record["completion_tokens"], record["usage_source"]) == (2, 4, "upstream")


def test_speech_streams_from_the_tts_deployment(
    azure_gateway: Gateway, client: OpenAI, azure_key: str, azure: FakeAzureOpenAI
) -> None:
    text = "Speak az-speech-1 on Azure."
    with client.audio.speech.with_streaming_response.create(model="tts-1", voice="alloy", input=text) as response:
        request_id = response.headers["x-request-id"]
        audio = response.read()
    assert audio == b"".join(speech_audio("mp3"))
    sent = azure_call(azure, "az-speech-1")
    assert (sent.deployment, sent.endpoint) == ("tts-1", "/audio/speech")
    assert_azure_auth(sent, azure_key)
    record = billed(azure_gateway, request_id)
    assert record["cost_nano"] == len(text) * nano_per("tts-1", "per_million_characters")


def test_transcription_uploads_to_the_whisper_deployment(
    azure_gateway: Gateway, client: OpenAI, azure: FakeAzureOpenAI
) -> None:
    audio = wav_bytes(2.5)
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("speech.wav", audio, "audio/wav"), prompt="az-whisper-1"
    )
    assert raw.parse().text == transcript_text("speech.wav")
    sent = azure_call(azure, "az-whisper-1")
    assert (sent.deployment, sent.endpoint, sent.api_version) == (
        "whisper-1",
        "/audio/transcriptions",
        AZURE_API_VERSION,
    )
    record = billed(azure_gateway, raw.headers["x-request-id"])
    assert record["audio_seconds"] == 3
    assert record["cost_nano"] == 3 * nano_per("whisper-1", "per_minute")


def test_image_generation_on_the_dall_e_3_deployment(
    azure_gateway: Gateway, client: OpenAI, azure: FakeAzureOpenAI
) -> None:
    raw = client.images.with_raw_response.generate(model="dall-e-3", prompt="a cat az-image-1")
    assert len(raw.parse().data) == 1
    assert azure_call(azure, "az-image-1").deployment == "dall-e-3"
    record = billed(azure_gateway, raw.headers["x-request-id"])
    assert record["cost_nano"] == int(Decimal(BUILTIN_PRICES["dall-e-3"]["per_image"]["1024x1024"]) * 10**9)


def test_moderations_and_image_variations_are_a_clear_400(client: OpenAI, azure: FakeAzureOpenAI) -> None:
    before = len(azure.calls)
    with pytest.raises(openai.BadRequestError) as moderation:
        client.moderations.create(model="omni-moderation-latest", input="az-moderation-1")
    assert moderation.value.body["message"] == "The model `omni-moderation-latest` does not support moderation."
    assert moderation.value.code == "unsupported_model"
    with pytest.raises(openai.BadRequestError) as variation:
        client.images.create_variation(model="dall-e-2", image=("cat.png", b"\x89PNG\r\n\x1a\n" + bytes(64)))
    assert variation.value.body["message"] == "The model `dall-e-2` does not support image variations."
    assert len(azure.calls) == before  # refused before anything went upstream


# ------------------------------------------------------------------------------ the anthropic SDK, translated


def test_anthropic_sdk_reaches_the_azure_deployment(
    azure_gateway: Gateway, claude: Anthropic, azure_key: str, azure: FakeAzureOpenAI
) -> None:
    raw = claude.messages.with_raw_response.create(
        model="gpt-4o", max_tokens=50, system="Be brief.", messages=user("hello from claude az-anth-1")
    )
    message = raw.parse()
    assert message.content[0].text == "You said: hello from claude az-anth-1"
    assert message.stop_reason == "end_turn"
    sent = azure_call(azure, "az-anth-1")
    assert sent.deployment == "prod-gpt4o" and sent.json["max_tokens"] == 50
    assert sent.json["messages"][0] == {"role": "system", "content": "Be brief."}
    assert_azure_auth(sent, azure_key)
    prompt = prompt_tokens_of([{"role": "system", "content": "Be brief."}, *user("hello from claude az-anth-1")])
    assert (message.usage.input_tokens, message.usage.output_tokens) == (prompt, 6)
    record = billed(azure_gateway, raw.headers["x-request-id"])
    assert (record["channel"], record["endpoint"]) == ("azure", "messages")
    assert record["cost_nano"] == chat_cost("gpt-4o", prompt, 6)


def test_anthropic_sdk_stream_from_azure_skips_the_filter_chunk(
    azure_gateway: Gateway, claude: Anthropic, azure: FakeAzureOpenAI
) -> None:
    with claude.messages.with_streaming_response.create(
        model="gpt-4o", max_tokens=50, messages=user("stream claude az-anth-2 #fake:chunks=2"), stream=True
    ) as response:
        request_id = response.headers["x-request-id"]
        events = list(response.parse())
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert events[0].message.id.startswith("msg_") and events[0].message.model == "gpt-4o"
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert text == "You said: stream claude az-anth-2"
    final = next(e for e in events if e.type == "message_delta")
    assert final.delta.stop_reason == "end_turn"
    prompt = prompt_tokens_of(user("stream claude az-anth-2 #fake:chunks=2"))
    assert (final.usage.input_tokens, final.usage.output_tokens) == (prompt, 5)
    assert azure_call(azure, "az-anth-2").json["stream_options"] == {"include_usage": True}
    record = billed(azure_gateway, request_id)
    assert record["usage_source"] == "upstream" and record["cost_nano"] == chat_cost("gpt-4o", prompt, 5)


def test_anthropic_sdk_gets_azures_content_filter_refusal_in_its_shape(claude: Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="gpt-4o", max_tokens=20, messages=user("blocked #fake:filter"))
    assert CONTENT_FILTERED in caught.value.message


# -------------------------------------------------------------------------------------- docs/azure.md runs


def test_docs_examples_run_against_an_azure_channel(azure_gateway: Gateway, azure_key: str) -> None:
    for code in examples("azure.md", "python"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(localise(code, azure_gateway, azure_key), "azure.md", "exec"), {})
        assert out.getvalue().count("You said: Hello!") == 2, out.getvalue()
    commands = [block for block in examples("azure.md", "sh") if block.lstrip().startswith("curl")]
    assert commands
    for command in commands:
        argv = shlex.split(localise(command, azure_gateway, azure_key).replace("\\\n", " "))
        result = subprocess.run([*argv, "--fail-with-body", "-sS"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and "You said: Hello!" in result.stdout, result.stdout + result.stderr


# --------------------------------------------------------------------------- the fake speaks Azure's shapes


def test_the_fake_refuses_like_azure(azure: FakeAzureOpenAI) -> None:
    url = f"{azure.base_url}/openai/deployments/prod-gpt4o/chat/completions"
    body = {"model": "gpt-4o", "messages": user("shape check")}
    good = {"api-key": AZURE_UPSTREAM_SECRET}
    assert call("POST", url, body, good).status == 404  # no api-version
    missing = call("POST", f"{url}?api-version={AZURE_API_VERSION}", body, {})
    assert missing.status == 401 and missing.json()["error"]["code"] == "401"
    bearer = call(
        "POST", f"{url}?api-version={AZURE_API_VERSION}", body, {"Authorization": f"Bearer {good['api-key']}"}
    )
    assert bearer.status == 401
    moderation = call("POST", f"{azure.base_url}/openai/deployments/x/moderations?api-version=1", body, good)
    assert moderation.json() == {"error": {"code": "404", "message": "Resource not found"}}


def test_the_fakes_replies_are_openai_sdk_types(azure: FakeAzureOpenAI) -> None:
    base = f"{azure.base_url}/openai/deployments"
    headers = {"api-key": AZURE_UPSTREAM_SECRET}
    query = f"?api-version={AZURE_API_VERSION}"
    reply = call(
        "POST", f"{base}/prod-gpt4o/chat/completions{query}", {"model": "gpt-4o", "messages": user("x")}, headers
    )
    assert ChatCompletion.model_validate(reply.json()).model_extra["prompt_filter_results"] == PROMPT_FILTER_RESULTS
    embedded = call("POST", f"{base}/embed-small/embeddings{query}", {"model": "e", "input": "x"}, headers)
    CreateEmbeddingResponse.model_validate(embedded.json())
    stream = call(
        "POST",
        f"{base}/prod-gpt4o/chat/completions{query}",
        {"model": "gpt-4o", "messages": user("x y"), "stream": True, "stream_options": {"include_usage": True}},
        headers,
    )
    events = [line[6:] for line in stream.body.decode().split("\n\n") if line.startswith("data: {")]
    opening = orjson.loads(events[0])
    # Azure's opening chunk has object "" (not the SDK's literal), which the SDK's lenient parsing accepts.
    assert opening == {**OPENING, "prompt_filter_results": PROMPT_FILTER_RESULTS}
    for event in events[1:]:
        ChatCompletionChunk.model_validate_json(event)


# --------------------------------------------------------------------------------------------- pure functions


def channel(base_url: str, **options: Any) -> ChannelConfig:
    settings: dict[str, Any] = {"api_version": AZURE_API_VERSION, **options}
    return ChannelConfig(
        name="az", type="azure", base_url=base_url, api_key="azure-key-0123", models=("gpt-4o",), **settings
    )


@pytest.mark.parametrize(
    "base_url",
    [
        "https://res.openai.azure.com",
        "https://res.openai.azure.com/",
        "https://res.openai.azure.com/openai",
        "https://res.openai.azure.com/openai/",
    ],
)
def test_the_url_names_the_deployment_and_the_api_version(base_url: str) -> None:
    assert azure_root(base_url) == "https://res.openai.azure.com"
    config = channel(base_url, deployments={"gpt-4o": "prod-gpt4o"})
    assert deployment_url(config, "/chat/completions", "gpt-4o") == (
        "https://res.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21"
    )
    assert deployment_url(config, "/embeddings", "text-embedding-3-small") == (
        "https://res.openai.azure.com/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    )


def test_a_clients_model_name_cannot_leave_its_path_segment() -> None:
    url = deployment_url(channel("https://res.openai.azure.com"), "/chat/completions", "x/../../admin?api-version=1#")
    assert url == (
        "https://res.openai.azure.com/openai/deployments/x%2F..%2F..%2Fadmin%3Fapi-version%3D1%23/chat/completions"
        "?api-version=2024-10-21"
    )


def test_chat_request_sends_the_key_as_api_key_and_the_body_as_sent() -> None:
    raw = b'{"model": "gpt-4o",  "messages": [{"role": "user", "content": "hi"}]}'
    config = channel("https://res.openai.azure.com", headers={"X-Team": "blue"})
    upstream = PROVIDERS["azure"].chat_request(config, parse_chat_request(raw), "gpt-4o", None, 4096)
    assert upstream.headers == {"Content-Type": "application/json", "X-Team": "blue", "api-key": "azure-key-0123"}
    assert upstream.body == raw
    assert upstream.url.endswith("/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21")


@pytest.mark.parametrize(
    ("api_version", "asks"),
    [("2024-06-01", False), ("2024-08-01-preview", False), ("2024-09-01-preview", True), ("2024-10-21", True)],
)
def test_stream_usage_is_asked_for_only_where_the_api_version_knows_it(api_version: str, asks: bool) -> None:
    raw = b'{"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
    config = channel("https://res.openai.azure.com", api_version=api_version)
    upstream = AzureOpenAIProvider().chat_request(config, parse_chat_request(raw), "gpt-4o", None, 4096)
    assert ("stream_options" in orjson.loads(upstream.body)) is asks


def test_json_and_multipart_requests_go_to_the_upstream_models_deployment() -> None:
    provider = AzureOpenAIProvider()
    config = channel("https://res.openai.azure.com", deployments={"whisper-1": "stt", "tts-1": "voice"})
    raw = b'{"model": "my-tts", "input": "hi", "voice": "alloy"}'
    speech = provider.json_request(config, "/audio/speech", "tts-1", raw, orjson.loads(raw), "tts-1")
    assert speech.url == "https://res.openai.azure.com/openai/deployments/voice/audio/speech?api-version=2024-10-21"
    assert orjson.loads(speech.body)["model"] == "tts-1" and speech.headers["api-key"] == "azure-key-0123"
    content_type, body = encode_multipart([("model", "whisper-1")], [("file", "a.wav", wav_bytes(0.1), "audio/wav")])
    form = parse_multipart(body, content_type)
    upload = provider.multipart_request(config, "/audio/transcriptions", "whisper-1", form, {})
    assert upload.url.startswith("https://res.openai.azure.com/openai/deployments/stt/audio/transcriptions?")
    assert upload.body == body and "Authorization" not in upload.headers


def test_capabilities_leave_out_what_azure_lacks() -> None:
    capabilities = PROVIDERS["azure"].capabilities
    assert Capability.MODERATION not in capabilities and Capability.IMAGE_VARIATIONS not in capabilities
    assert {Capability.CHAT, Capability.EMBEDDINGS, Capability.IMAGES, Capability.SPEECH} <= capabilities
    assert Capability.IMAGE_VARIATIONS in PROVIDERS["openai"].capabilities


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


OPENING = {"choices": [], "created": 0, "id": "", "model": "", "object": "", "prompt_filter_results": []}
CONTENT = {
    "id": "chatcmpl-az1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None, "content_filter_results": {}}],
}


def test_a_synthesised_usage_chunk_takes_the_replys_id_not_the_filter_chunks() -> None:
    tap = OpenAIStreamTap(client_wants_usage=True)
    assert tap.feed(sse(OPENING)) == sse(OPENING)  # relayed as Azure sent it
    tap.feed(sse(CONTENT))
    tap.feed(b"data: [DONE]\n\n")
    usage_event = tap.finish(Usage(5, 1)).split(b"\n\n")[0]
    chunk = orjson.loads(usage_event[6:])
    assert (chunk["id"], chunk["model"], chunk["choices"]) == ("chatcmpl-az1", "gpt-4o-2024-08-06", [])


def test_the_translating_decoder_drops_the_filter_chunk_and_keeps_the_content() -> None:
    decoder = OpenAIToChatStream()
    assert decoder.feed(sse(OPENING)) == []
    (chunk,) = decoder.feed(sse(CONTENT))
    assert chunk["choices"][0]["delta"] == {"content": "Hi"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'{"error": {"code": "429", "message": "Requests ... exceeded token rate limit"}}',
            "Requests ... exceeded token rate limit",
        ),
        (
            b'{"error": {"message": "filtered", "type": null, "param": "prompt", "code": "content_filter", '
            b'"status": 400, "innererror": {"code": "ResponsibleAIPolicyViolation"}}}',
            "filtered",
        ),
        (b'{"error": {"code": "DeploymentNotFound", "message": "The API deployment ..."}}', "The API deployment ..."),
    ],
)
def test_azure_error_bodies_are_read_for_their_message(body: bytes, message: str) -> None:
    assert upstream_error_message(body) == message
