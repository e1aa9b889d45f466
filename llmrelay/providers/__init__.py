"""Outbound adaptors, one per kind of upstream, looked up by a channel's `type`."""

from llmrelay.config import ChannelConfig, RoutingConfig
from llmrelay.providers.anthropic import AnthropicProvider
from llmrelay.providers.azure import AzureOpenAIProvider
from llmrelay.providers.base import Channel, Provider
from llmrelay.providers.gemini import GeminiProvider
from llmrelay.providers.http import UpstreamPool
from llmrelay.providers.openai import OpenAICompatibleProvider
from llmrelay.relay.errors import channel_secrets
from llmrelay.relay.health import ChannelHealth

PROVIDERS: dict[str, Provider] = {
    "openai": OpenAICompatibleProvider(),
    "anthropic": AnthropicProvider(),
    "gemini": GeminiProvider(),
    "azure": AzureOpenAIProvider(),
}


def provider_for(config: ChannelConfig) -> Provider:
    """The channel's adaptor: a mock channel is called exactly as a real upstream of the format it presents."""
    return PROVIDERS[config.mock.format if config.mock else config.type]


def make_channel(config: ChannelConfig, pool: UpstreamPool, routing: RoutingConfig) -> Channel:
    """A configured channel, ready to call: its adaptor, its origin's connections, secrets and a fresh health
    record."""
    return Channel(
        config,
        provider_for(config),
        pool.connections_for(config.base_url),
        channel_secrets(config.api_key, config.headers),
        ChannelHealth(config.name, routing, config.max_parallel),
    )
