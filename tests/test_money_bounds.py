"""The reservation is a true upper bound of what a provider bills, for every input kind: text, images (per
upstream model), audio, tool schemas.

The providers' image rules are written out here from their published documentation, independently of
llmrelay/metering/tokens.py, and the bound must be at least the largest bill over many image sizes.
"""

from __future__ import annotations

import base64
import math
from fractions import Fraction

import bpe_openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmrelay.metering.tokens import IMAGE_BOUNDS, count_chat_prompt, image_token_bound, prompt_token_bound

SIDES = [1, 100, 383, 384, 385, 511, 512, 513, 767, 768, 769, 1023, 1024, 1025, 1092, 1536, 1537, 1568, 1569]
SIDES += [2047, 2048, 2049, 2576, 3000, 3072, 3073, 4096, 8000, 20000]
SIZES = [(w, h) for w in SIDES for h in SIDES]


def openai_tiles(width: int, height: int) -> int:
    """OpenAI (gpt-4o, gpt-4o-mini, o1, o3): fit within 2048x2048, then scale the shortest side down to 768,
    then count 512px tiles."""
    w, h = Fraction(width), Fraction(height)
    if max(w, h) > 2048:
        scale = Fraction(2048) / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = Fraction(768) / min(w, h)
        w, h = w * scale, h * scale
    return math.ceil(w / 512) * math.ceil(h / 512)


def openai_tile_tokens(base: int, per_tile: int) -> int:
    return max(base + per_tile * openai_tiles(w, h) for w, h in SIZES)


def openai_patch_tokens(multiplier: str) -> int:
    """OpenAI's patch models (gpt-4.1, -mini, -nano, o4-mini): 32px patches, at most 1536 (larger images are
    scaled down to fit), times the model's multiplier."""
    patches = max(min(math.ceil(w / 32) * math.ceil(h / 32), 1536) for w, h in SIZES)
    return math.ceil(patches * Fraction(multiplier))


def claude_tokens(long_edge: int = 1568) -> int:
    """Claude (before Opus 4.7): the largest sizes that are not resized (long edge 1568, about 1.15 megapixels)
    cost width*height/750 tokens; the newer rule counts 28px patches of the same sizes."""
    largest = [(1092, 1092), (951, 1268), (896, 1344), (819, 1456), (784, 1568)]
    by_area = max(math.ceil(w * h / 750) for w, h in largest)
    by_patches = max(math.ceil(w / 28) * math.ceil(h / 28) for w, h in largest)
    return max(by_area, by_patches)


def gemini_tokens() -> int:
    """Gemini: 258 tokens for an image of at most 384x384, else 258 per 768x768 tile after the image is scaled
    to fit within 3072x3072; Gemini 3 at MEDIA_RESOLUTION_ULTRA_HIGH: 2240 an image."""
    worst = 0
    for width, height in SIZES:
        w, h = Fraction(width), Fraction(height)
        if max(w, h) > 3072:
            scale = Fraction(3072) / max(w, h)
            w, h = w * scale, h * scale
        tiles = 1 if max(w, h) <= 384 else math.ceil(w / 768) * math.ceil(h / 768)
        worst = max(worst, 258 * tiles)
    return max(worst, 2240)


PUBLISHED = {
    "gpt-4o": openai_tile_tokens(85, 170),
    "gpt-4o-2024-08-06": openai_tile_tokens(85, 170),
    "chatgpt-4o-latest": openai_tile_tokens(85, 170),
    "gpt-4-turbo": openai_tile_tokens(85, 170),
    "gpt-4o-mini": openai_tile_tokens(2833, 5667),
    "gpt-4o-mini-2024-07-18": openai_tile_tokens(2833, 5667),
    "o1": openai_tile_tokens(75, 150),
    "o3": openai_tile_tokens(75, 150),
    "gpt-4.1": openai_patch_tokens("1"),
    "gpt-4.1-mini": openai_patch_tokens("1.62"),
    "gpt-4.1-nano": openai_patch_tokens("2.46"),
    "o4-mini": openai_patch_tokens("1.72"),
    "claude-sonnet-4-5": claude_tokens(),
    "claude-3-5-haiku-latest": claude_tokens(),
    "claude-opus-4-6": claude_tokens(),
    "claude-opus-4-7": 4784,  # long edge 2576 px: at most 4784 28px patches
    "gemini-2.0-flash": gemini_tokens(),
    "gemini-2.5-pro": gemini_tokens(),
}


def test_the_published_worst_cases() -> None:
    # The numbers the rules give, as the providers' documentation states them.
    assert PUBLISHED["gpt-4o"] == 85 + 170 * 8  # 2048x768 after scaling: 4 x 2 tiles
    assert PUBLISHED["gpt-4o-mini"] == 2833 + 5667 * 8
    assert PUBLISHED["o1"] == 75 + 150 * 8
    assert PUBLISHED["claude-sonnet-4-5"] == 1640  # 784x1568 / 750, rounded up
    assert PUBLISHED["gemini-2.0-flash"] == 258 * 16


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_image_bound_is_at_least_what_the_provider_bills(model: str) -> None:
    assert image_token_bound(model) >= PUBLISHED[model]


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4o-mini", "o1"])
def test_low_detail_is_the_base_only_on_openai_tile_models(model: str) -> None:
    base = {"gpt-4o": 85, "gpt-4o-mini": 2833, "o1": 75}[model]
    assert image_token_bound(model, "low") == base
    assert image_token_bound(model, "high") == image_token_bound(model) == PUBLISHED[model]


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.0-flash", "gpt-4.1-mini"])
def test_detail_low_does_not_lower_the_bound_where_the_provider_ignores_it(model: str) -> None:
    assert image_token_bound(model, "low") == image_token_bound(model)


@pytest.mark.parametrize("model", ["llama-3.1-8b", "my-vision-model", "claude-opus-5", "gemini-9-ultra", "gpt-6"])
def test_an_unknown_model_takes_the_largest_bound_of_any(model: str) -> None:
    largest = max(bound.high for _, bound in IMAGE_BOUNDS)
    assert image_token_bound(model) == largest
    assert largest >= max(PUBLISHED.values())


def image_part(url: str, detail: str | None = None) -> dict[str, object]:
    image: dict[str, object] = {"url": url}
    if detail:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_the_prompt_bound_reserves_each_image_at_the_models_bound(model: str) -> None:
    text = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}]}]
    two = [{"role": "user", "content": [*text[0]["content"], image_part("https://x.test/a.png"), image_part("b")]}]
    assert prompt_token_bound(two, None, model) - prompt_token_bound(text, None, model) == 2 * PUBLISHED[model]


def test_the_prompt_bound_of_an_image_depends_on_the_upstream_model() -> None:
    messages = [{"role": "user", "content": [image_part("https://x.test/a.png")]}]
    assert prompt_token_bound(messages, None, "gpt-4o-mini") > prompt_token_bound(messages, None, "gpt-4o")
    low = [{"role": "user", "content": [image_part("https://x.test/a.png", "low")]}]
    assert prompt_token_bound(messages, None, "gpt-4o") - prompt_token_bound(low, None, "gpt-4o") == 170 * 8


def b64(size: int) -> str:
    return base64.b64encode(bytes(range(256)) * (size // 256 + 1))[:size].decode()


@pytest.mark.parametrize("model", ["gpt-4o", "gemini-2.0-flash", "gpt-4o-audio-preview"])
def test_audio_input_is_bounded_by_its_base64_size(model: str) -> None:
    # OpenAI bills audio input per second (gpt-4o audio models: at most ~10 tokens a second of input) and Gemini at
    # 32 tokens a second; any real encoding carries far more than 32 base64 characters a second, so the size of the
    # base64 data bounds the bill for any length of audio.
    data = b64(48_000)  # 36 kB of audio: 3 s of 96 kbit/s MP3, 2.25 s of 8 kHz 16-bit WAV
    text = [{"role": "user", "content": [{"type": "text", "text": "Transcribe"}]}]
    audio = {"type": "input_audio", "input_audio": {"data": data, "format": "mp3"}}
    with_audio = [{"role": "user", "content": [*text[0]["content"], audio]}]
    added = prompt_token_bound(with_audio, None, model) - prompt_token_bound(text, None, model)
    assert added == len(data)
    assert added >= 3 * 32 and added >= 3 * 10


def test_inline_media_that_is_not_an_image_is_bounded_by_its_size_too() -> None:
    # Gemini's own clients send audio, video and PDFs as inlineData, which the internal shape carries as a data URI.
    data = b64(9_000)
    media = [{"role": "user", "content": [image_part(f"data:audio/mp3;base64,{data}")]}]
    picture = [{"role": "user", "content": [image_part(f"data:image/png;base64,{data}")]}]
    model = "gemini-2.0-flash"
    assert prompt_token_bound(media, None, model) - prompt_token_bound(picture, None, model) == len(data)


TOOL_NAMES = st.text(st.characters(categories=("L", "N"), include_characters="_-"), min_size=1, max_size=30)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=40))
JSON_SCHEMA = st.recursive(
    st.dictionaries(st.text(max_size=12), JSON_LEAF, max_size=4),
    lambda inner: st.dictionaries(st.text(max_size=12), st.one_of(inner, st.lists(inner, max_size=3)), max_size=4),
    max_leaves=12,
)
TOOLS = st.lists(
    st.builds(
        lambda name, description, parameters: {
            "type": "function",
            "function": {"name": name, "description": description, "parameters": parameters},
        },
        TOOL_NAMES,
        st.text(max_size=80),
        JSON_SCHEMA,
    ),
    min_size=1,
    max_size=4,
)
O200K = bpe_openai.get_encoding("o200k_base")
CL100K = bpe_openai.get_encoding("cl100k_base")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tools=TOOLS)
def test_tool_schemas_are_bounded_by_their_bytes(tools: list[dict[str, object]]) -> None:
    messages = [{"role": "user", "content": "What is the weather?"}]
    schema_text = orjson.dumps(tools).decode()
    for model, encoding in (("gpt-4o", O200K), ("gpt-4", CL100K)):
        added = prompt_token_bound(messages, tools, model) - prompt_token_bound(messages, None, model)
        assert added == len(schema_text.encode())  # every byte of the schemas, as JSON
        assert added >= len(encoding.encode(schema_text))  # never fewer than the model's tokens for them
        # and never below the offline count the gateway bills with when an upstream reports no usage
        assert prompt_token_bound(messages, tools, model) >= count_chat_prompt(messages, model, tools)


def test_claude_tool_use_adds_its_system_prompt() -> None:
    # Anthropic adds a tool-use system prompt to every request with tools (up to 530 tokens: Claude 3 Opus).
    messages = [{"role": "user", "content": "hi"}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    schema_bytes = len(orjson.dumps(tools))
    added = prompt_token_bound(messages, tools, "claude-sonnet-4-5") - prompt_token_bound(
        messages, None, "claude-sonnet-4-5"
    )
    assert added >= schema_bytes + 530


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.text(max_size=200), min_size=1, max_size=5),
    model=st.sampled_from(["gpt-4o", "gpt-4o-mini", "gpt-4", "gpt-3.5-turbo"]),
)
def test_the_prompt_bound_is_never_below_the_exact_count(texts: list[str], model: str) -> None:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]
    assert prompt_token_bound(messages, None, model) >= count_chat_prompt(messages, model)
