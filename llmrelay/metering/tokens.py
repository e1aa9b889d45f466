"""Offline token counting, used when an upstream does not report usage and to size quota reservations.

bpe-openai ships the cl100k and o200k vocabularies inside the wheel, so counting works on servers with no
network (tiktoken would try to download them at first use).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import bpe_openai
import orjson

# Framing tokens OpenAI adds around chat messages (per message, and to prime the reply).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3
# An image part's cost depends on its pixels, which we do not fetch; reserve the high-detail ceiling of a
# 2048x768 image (85 + 170 * 8 tiles) so an estimate never falls short of what the upstream bills.
IMAGE_TOKENS_ESTIMATE = 1445

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


def encoding_name_for(model: str) -> str:
    """o200k for the gpt-4o family and newer, cl100k for older OpenAI models and as the general estimate."""
    return "o200k_base" if model.startswith(_O200K_PREFIXES) else "cl100k_base"


@functools.cache
def _encoding(name: str) -> bpe_openai.Encoding:
    return bpe_openai.get_encoding(name)


def count_text(text: str, model: str) -> int:
    if not text:
        return 0
    return len(_encoding(encoding_name_for(model)).encode(text))


def _content_text_and_images(content: object) -> tuple[list[str], int]:
    """Split an OpenAI message content (string or list of parts) into its texts and an image count."""
    if isinstance(content, str):
        return [content], 0
    texts: list[str] = []
    images = 0
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif kind == "image_url":
                images += 1
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                texts.append(part["refusal"])
    return texts, images


def count_chat_prompt(messages: Iterable[object], model: str, tools: object = None) -> int:
    """Estimate prompt tokens of an OpenAI chat request the way OpenAI frames messages."""
    texts: list[str] = []
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE
        content_texts, images = _content_text_and_images(message.get("content"))
        texts.extend(content_texts)
        total += images * IMAGE_TOKENS_ESTIMATE
        if isinstance(message.get("role"), str):
            texts.append(message["role"])
        if isinstance(message.get("name"), str):
            texts.append(message["name"])
            total += TOKENS_PER_NAME
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                texts.extend(v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str))
    if tools:
        texts.append(orjson.dumps(tools).decode())
    return total + count_text("\n".join(texts), model)


def count_completion(texts: Iterable[str], model: str) -> int:
    """Count generated text (content, tool-call names and arguments) of a reply."""
    return count_text("".join(texts), model)


def warm_up_tokenizers() -> None:
    """Load both vocabularies now, so the first requests do not pay for it."""
    for name in ("o200k_base", "cl100k_base"):
        _encoding(name).encode("warm up")
