"""Outbound adaptors, one per upstream wire format, looked up by a channel's `type`."""

from llmrelay.providers.base import ChatProvider
from llmrelay.providers.openai import OpenAICompatibleProvider

PROVIDERS: dict[str, ChatProvider] = {"openai": OpenAICompatibleProvider()}
