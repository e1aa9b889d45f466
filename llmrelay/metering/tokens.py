"""Token counts without the network: a strict upper bound for reservations, and exact offline counting.

- `prompt_token_bound` needs no tokenizer: a byte-level BPE token covers at least one byte, so a prompt's
  UTF-8 size bounds its token count. Reserving against it means a request can never cost more than was
  reserved, and it costs almost nothing on the hot path.
- `count_chat_prompt` / `count_completion` count exactly with OpenAI's own vocabularies (o200k, cl100k),
  which bpe-openai ships inside its wheel (tiktoken would download them at first use). They are used when
  an upstream reports no usage, and to refine a reservation a key cannot afford on the bound. The
  vocabularies take ~170 MB, so they are loaded the first time they are needed, in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import bpe_openai

# Framing tokens OpenAI adds around chat messages (per message, and to prime the reply).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3
# An image part's cost depends on its pixels, which we do not fetch; count the high-detail ceiling of a
# 2048x768 image (85 + 170 * 8 tiles) so neither bound nor estimate falls short of what the upstream bills.
IMAGE_TOKENS_ESTIMATE = 1445

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


def _prompt_parts(messages: Iterable[Any], tools: object) -> tuple[list[str], int]:
    """The texts of a chat prompt (contents, roles, names, tool calls, tool schemas) and its framing tokens."""
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
                elif kind == "image_url":
                    framing += IMAGE_TOKENS_ESTIMATE
                elif kind == "refusal" and isinstance(part.get("refusal"), str):
                    texts.append(part["refusal"])
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
    return texts, framing


def prompt_token_bound(messages: Iterable[Any], tools: object = None) -> int:
    """An upper bound on a chat prompt's tokens, from byte sizes alone (no tokenizer)."""
    texts, framing = _prompt_parts(messages, tools)
    return framing + sum(len(text.encode()) for text in texts)


def count_chat_prompt(messages: Iterable[Any], model: str, tools: object = None) -> int:
    """Prompt tokens of an OpenAI chat request, framed the way OpenAI frames messages."""
    texts, framing = _prompt_parts(messages, tools)
    return framing + sum(count_text(text, model) for text in texts)


def count_completion(texts: Iterable[str], model: str) -> int:
    """Count generated text (content, tool-call names and arguments) of a reply."""
    return count_text("".join(texts), model)
