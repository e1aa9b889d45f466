"""Azure OpenAI: OpenAI's wire format behind Azure's URLs and key header.

Bodies, replies, streams and errors are OpenAI's (so an OpenAI client's request is forwarded as it came, and
other clients are translated exactly as for OpenAI); what differs is where and how the gateway calls:

- the URL names a *deployment*, not a model: `{base_url}/openai/deployments/{deployment}/{endpoint}`, and the
  deployment comes from the channel's `deployments` map (upstream model -> deployment), else the model's own
  name (what Azure's portal suggests when a model is deployed);
- every call carries `?api-version=...`; without it Azure answers 404 "Resource not found";
- the key travels in an `api-key` header, not `Authorization: Bearer`.

Azure has no moderations endpoint and no image variations, so those capabilities are left out and clients get
the gateway's clear 400 instead of an upstream 404.
"""

from __future__ import annotations

from urllib.parse import quote

from llmrelay.config import ChannelConfig
from llmrelay.providers.base import Capability
from llmrelay.providers.openai import OpenAICompatibleProvider

# The first API versions that accept `stream_options` (include_usage): older ones refuse the request with a 400.
_STREAM_USAGE_SINCE = "2024-09-01"


def azure_root(base_url: str) -> str:
    """The resource's endpoint, https://NAME.openai.azure.com, whether or not the operator pasted it with the
    `/openai` path the Azure portal shows in sample URLs (or a trailing slash)."""
    return base_url.rstrip("/").removesuffix("/openai")


def deployment_url(channel: ChannelConfig, path: str, upstream_model: str) -> str:
    """The URL of an OpenAI endpoint (`path`, e.g. "/chat/completions") on the model's deployment."""
    deployment = channel.deployments.get(upstream_model, upstream_model)
    # Quoted whole: an unlisted deployment is a client's model name (a glob channel lets any through), and
    # must not be able to add path segments or a query of its own.
    return (
        f"{azure_root(channel.base_url)}/openai/deployments/{quote(deployment, safe='')}{path}"
        f"?api-version={quote(channel.api_version, safe='')}"
    )


class AzureOpenAIProvider(OpenAICompatibleProvider):
    capabilities = frozenset(Capability) - {Capability.MODERATION, Capability.IMAGE_VARIATIONS}

    def url(self, channel: ChannelConfig, path: str, upstream_model: str) -> str:
        return deployment_url(channel, path, upstream_model)

    def auth_headers(self, channel: ChannelConfig) -> dict[str, str]:
        return {"api-key": channel.api_key} if channel.api_key else {}

    def reports_stream_usage(self, channel: ChannelConfig) -> bool:
        # Versions are dates (YYYY-MM-DD, maybe -preview), so text order is date order.
        return channel.api_version >= _STREAM_USAGE_SINCE
