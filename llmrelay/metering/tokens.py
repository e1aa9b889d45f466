"""Token counts without the network: a strict upper bound for reservations, and exact offline counting.

- `prompt_token_bound` needs no tokenizer: a byte-level BPE token covers at least one byte, so a prompt's
  UTF-8 size bounds its token count. Media are bounded by what the upstream model's provider bills at most:
  images by the model's worst case (`IMAGE_BOUNDS`), audio and other inline media by their base64 size.
  Reserving against it means a request can never cost more than was reserved, and it costs almost nothing
  on the hot path.
- `count_chat_prompt` / `count_completion` count exactly with OpenAI's own vocabularies (o200k, cl100k),
  which bpe-openai ships inside its wheel (tiktoken would download them at first use). They are used when
  an upstream reports no usage, and to refine a reservation a key cannot afford on the bound. The
  vocabularies take ~170 MB, so they are loaded the first time they are needed, in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import bpe_openai

# Framing tokens OpenAI adds around chat messages (per message, and to prime the reply).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3


@dataclass(frozen=True, slots=True)
class ImageBound:
    """The most one image part can cost, in prompt tokens: at full detail, and with `detail: low`."""

    high: int
    low: int


def _tiles(base: int, per_tile: int) -> ImageBound:
    """OpenAI's tile models: an image is fit within 2048x2048, then its shortest side scaled down to 768, then
    billed `base` + `per_tile` per 512px tile: at most 2048x768, 4 x 2 = 8 tiles. `detail: low` is `base`."""
    return ImageBound(base + 8 * per_tile, base)


def _patches(multiplier: str) -> ImageBound:
    """OpenAI's patch models: 32px patches, at most 1536 (larger images are scaled down), times a multiplier."""
    tokens = math.ceil(1536 * Fraction(multiplier))
    return ImageBound(tokens, tokens)


def _flat(tokens: int) -> ImageBound:
    return ImageBound(tokens, tokens)  # providers that ignore OpenAI's `detail`


# The costliest image per upstream model, from each provider's published rules; the first prefix that a model
# name starts with wins (so a longer prefix stands before a shorter one). A model matching none takes the
# largest bound of all (UNKNOWN_IMAGE_BOUND), so a new model is never under-reserved.
_CLAUDE_CLASSIC = _flat(1640)  # long edge <= 1568 px and ~1.15 MP: 784x1568 / 750 = 1639 (28px patches: 1568)
_GEMINI = _flat(258 * 16)  # 258 a 768px tile, within 3072x3072: 4 x 4 tiles (Gemini 3 ultra-high: 2240)
IMAGE_BOUNDS: tuple[tuple[str, ImageBound], ...] = (
    ("gpt-4o-mini", _tiles(2833, 5667)),
    ("gpt-4o", _tiles(85, 170)),
    ("chatgpt-4o", _tiles(85, 170)),
    ("gpt-4-turbo", _tiles(85, 170)),
    ("gpt-4-vision", _tiles(85, 170)),
    ("gpt-4.1-mini", _patches("1.62")),
    ("gpt-4.1-nano", _patches("2.46")),
    ("gpt-4.1", _patches("1")),
    ("o4-mini", _patches("1.72")),
    ("o1", _tiles(75, 150)),
    ("o3", _tiles(75, 150)),
    ("claude-opus-4-7", _flat(4784)),  # long edge <= 2576 px: at most 4784 28px patches
    *(
        (prefix, _CLAUDE_CLASSIC)
        for prefix in (
            "claude-3-",
            "claude-sonnet-4-0",
            "claude-sonnet-4-2025",
            "claude-sonnet-4-5",
            "claude-sonnet-4-6",
            "claude-opus-4-0",
            "claude-opus-4-2025",
            "claude-opus-4-1",
            "claude-opus-4-5",
            "claude-opus-4-6",
            "claude-haiku-4-5",
        )
    ),
    *((prefix, _GEMINI) for prefix in ("gemini-1.5-", "gemini-2.0-", "gemini-2.5-", "gemini-3-")),
)
UNKNOWN_IMAGE_BOUND = max(bound.high for _, bound in IMAGE_BOUNDS)
# Anthropic adds a tool-use system prompt to every request that carries tools: at most 530 tokens (Claude 3
# Opus, tool_choice auto; 346 for the Claude 4 models). It is added to the bound of Claude models.
CLAUDE_TOOL_PROMPT_TOKENS = 530


@functools.lru_cache(maxsize=256)
def _image_bound(model: str) -> ImageBound | None:
    return next((bound for prefix, bound in IMAGE_BOUNDS if model.startswith(prefix)), None)


def image_token_bound(model: str, detail: object = None) -> int:
    """The most one image part costs on `model` (its upstream name); `detail: low` counts where it applies."""
    bound = _image_bound(model)
    if bound is None:
        return UNKNOWN_IMAGE_BOUND
    return bound.low if detail == "low" else bound.high


def _media_tokens(part: dict[str, Any], kind: object, model: str) -> int:
    """Prompt tokens of a media part (0 for a text part): images at the model's bound; audio, video, PDFs and
    files at their base64 size, which exceeds their per-second or per-page bill (see README: Billing)."""
    if kind == "image_url":
        image = part.get("image_url")
        url, detail = (image.get("url"), image.get("detail")) if isinstance(image, dict) else (image, None)
        tokens = image_token_bound(model, detail)
        if isinstance(url, str) and url.startswith("data:") and not url.startswith("data:image/"):
            tokens += len(url) - url.find(",") - 1  # inline audio, video or a PDF (Gemini's clients send them)
        return tokens
    if kind == "input_audio":
        audio = part.get("input_audio")
        data = audio.get("data") if isinstance(audio, dict) else None
        return len(data) if isinstance(data, str) else 0
    if kind == "file":
        file = part.get("file")
        data = file.get("file_data") if isinstance(file, dict) else None
        # A PDF is billed as its text plus an image of each page: its size plus one image, which covers pages
        # that carry at least an image's worth of bytes (see README for the exception).
        return image_token_bound(model) + (len(data) if isinstance(data, str) else 0)
    return 0


_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")
_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-")
_ENCODINGS = ("o200k_base", "cl100k_base")
_load_lock = threading.Lock()


def encoding_name_for(model: str) -> str:
    """o200k for the gpt-4o family and newer, cl100k for older OpenAI models and as the general estimate."""
    return "o200k_base" if model.startswith(_O200K_PREFIXES) else "cl100k_base"


def counts_exactly(model: str) -> bool:
    """Whether our vocabularies are the model's own (OpenAI models), so a count is exact, not an estimate."""
    return model.startswith(_OPENAI_PREFIXES)


@functools.cache
def _encoding(name: str) -> bpe_openai.Encoding:
    import bpe_openai  # ~60 MB on import: only when a count is really needed

    with _load_lock:
        return bpe_openai.get_encoding(name)


def tokenizers_loaded() -> bool:
    return _encoding.cache_info().currsize == len(_ENCODINGS)


def load_tokenizers() -> None:
    for name in _ENCODINGS:
        _encoding(name).encode("warm up")


async def ensure_tokenizers() -> None:
    """Load the vocabularies off the event loop, once."""
    if not tokenizers_loaded():
        await asyncio.get_running_loop().run_in_executor(None, load_tokenizers)


def count_text(text: str, model: str) -> int:
    if not text:
        return 0
    return len(_encoding(encoding_name_for(model)).encode(text))


def _prompt_parts(messages: Iterable[Any], tools: object, model: str) -> tuple[list[str], int]:
    """The texts of a chat prompt (contents, roles, names, tool calls, tool schemas) and its framing and media
    tokens, for the upstream `model`."""
    texts: list[str] = []
    framing = TOKENS_REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        framing += TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                kind = part.get("type")
                if kind == "text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif kind == "refusal" and isinstance(part.get("refusal"), str):
                    texts.append(part["refusal"])
                else:
                    framing += _media_tokens(part, kind, model)
        if isinstance(message.get("role"), str):
            texts.append(message["role"])
        if isinstance(message.get("name"), str):
            texts.append(message["name"])
            framing += TOKENS_PER_NAME
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                texts.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
    if tools:
        texts.append(orjson.dumps(tools).decode())
        if model.startswith("claude-"):
            framing += CLAUDE_TOOL_PROMPT_TOKENS
    return texts, framing


def prompt_token_bound(messages: Iterable[Any], tools: object = None, model: str = "") -> int:
    """An upper bound on a chat prompt's tokens on the upstream `model`, from sizes alone (no tokenizer)."""
    texts, framing = _prompt_parts(messages, tools, model)
    return framing + sum(len(text.encode()) for text in texts)


def count_chat_prompt(messages: Iterable[Any], model: str, tools: object = None) -> int:
    """Prompt tokens of an OpenAI chat request, framed the way OpenAI frames messages (media at their bound:
    their pixels are not fetched)."""
    texts, framing = _prompt_parts(messages, tools, model)
    return framing + sum(count_text(text, model) for text in texts)


def count_completion(texts: Iterable[str], model: str) -> int:
    """Count generated text (content, tool-call names and arguments) of a reply."""
    return count_text("".join(texts), model)
