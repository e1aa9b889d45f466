"""Outbound adaptors, one per upstream wire format, looked up by a channel's `type`."""

from llmrelay.providers.anthropic import AnthropicProvider
from llmrelay.providers.base import Provider
from llmrelay.providers.gemini import GeminiProvider
from llmrelay.providers.openai import OpenAICompatibleProvider

PROVIDERS: dict[str, Provider] = {
    "openai": OpenAICompatibleProvider(),
    "anthropic": AnthropicProvider(),
    "gemini": GeminiProvider(),
}
