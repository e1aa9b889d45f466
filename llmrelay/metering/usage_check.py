"""Whether the token usage an upstream reported can be billed as reported.

OpenAI-compatible servers (vLLM, Ollama, llama.cpp, relays) may send a usage object of zeros, or zero
prompt tokens, for a request that plainly had a prompt and got a reply: billed as reported, it would be
free. Where a count is impossible (0 tokens for non-empty text), the gateway counts offline instead and
records usage_source "tokenizer", as it does when no usage is reported at all. A zero the request allows (an
empty prompt, a reply with no text, e.g. cut off at once) is billed as reported.

The decision is this one function, so every place that takes usage (a reply body, a stream, embeddings)
decides the same way.
"""

from __future__ import annotations

from llmrelay.metering.pricing import Usage


def usable_usage(usage: Usage | None, prompt_nonempty: bool, reply_nonempty: bool) -> bool:
    """True when `usage` (None: the upstream reported none) can be billed as reported: it exists, it counts
    at least one prompt token if the prompt was not empty, and at least one completion token if the reply
    has text (content, refusal, reasoning, tool-call names or arguments). False: count offline instead."""
    if usage is None:
        return False
    if prompt_nonempty and usage.prompt_tokens <= 0:
        return False
    return not (reply_nonempty and usage.completion_tokens <= 0)
