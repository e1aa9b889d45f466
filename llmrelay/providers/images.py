"""Fetching image URLs for upstreams that take images only inline (Gemini), without opening the gateway's
network to its clients.

A client-supplied URL makes the gateway connect somewhere; unchecked, that reaches the operator's own
network (server-side request forgery). Every address a host name resolves to is checked by the connector's
resolver, at connect time, so a name that resolves differently between a check and the connection cannot
slip through; literal addresses and every redirect are checked too. Loopback, private, link-local,
multicast and reserved addresses are refused unless the operator allows them (`image_fetch:
{allow_private_addresses: true}`). Size and time are bounded, and only images are accepted.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from llmrelay.config import ImageFetchConfig

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class ImageFetchError(OSError):
    """An image URL that cannot or may not be fetched; the message says why. (An OSError, so that aiohttp
    passes it through from the resolver as the cause of a connection error.)"""


def refuse_private(address: str) -> None:
    """Raise unless `address` is a public (globally routable) IP address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    if not ip.is_global or ip.is_multicast:
        raise ImageFetchError(f"it points to a private or reserved address ({ip}), which this gateway does not fetch")


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses the host if any address is not public."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        infos = await self._inner.resolve(host, port, family)
        for info in infos:
            refuse_private(info["host"])
        return infos

    async def close(self) -> None:
        await self._inner.close()


class ImageFetcher:
    def __init__(self, config: ImageFetchConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = None if self.config.allow_private_addresses else PublicOnlyResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, limit=32),
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                headers={"User-Agent": "llmrelay-image-fetch"},
            )
        return self._session

    async def fetch(self, url: str) -> tuple[str, str]:
        """(mime type, base64 data) of the image at `url`; ImageFetchError says why it cannot be had."""
        try:
            return await self._fetch(url)
        except TimeoutError:
            raise ImageFetchError(f"it did not answer within {self.config.timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ImageFetchError):
                raise exc.os_error from None
            raise ImageFetchError("it could not be reached") from None
        except aiohttp.ClientError as exc:
            raise ImageFetchError(f"fetching it failed ({type(exc).__name__})") from None

    async def _fetch(self, url: str) -> tuple[str, str]:
        for _ in range(MAX_REDIRECTS + 1):
            self._check_url(url)
            async with self._client().get(url, allow_redirects=False) as response:
                if response.status in _REDIRECTS and "Location" in response.headers:
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status != 200:
                    raise ImageFetchError(f"it answered HTTP {response.status}")
                mime = response.content_type
                if not mime.startswith("image/"):
                    raise ImageFetchError(f"it is not an image ({mime})")
                data = await self._read_bounded(response)
                return mime, base64.b64encode(data).decode("ascii")
        raise ImageFetchError(f"it redirected more than {MAX_REDIRECTS} times")

    def _check_url(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImageFetchError("only http(s) URLs can be fetched")
        if self.config.allow_private_addresses:
            return
        try:
            ipaddress.ip_address(parts.hostname.split("%", 1)[0])
        except ValueError:
            return  # a host name: the resolver checks each of its addresses at connect time
        refuse_private(parts.hostname)  # aiohttp connects to literal addresses without resolving them

    async def _read_bounded(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.config.max_bytes
        if response.content_length is not None and response.content_length > limit:
            raise ImageFetchError(f"it is larger than {limit} bytes")
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise ImageFetchError(f"it is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def fetch_all(self, urls: list[str]) -> dict[str, tuple[str, str]]:
        """Every URL fetched at once; the first failure is raised (as ImageFetchError naming the URL)."""

        async def one(url: str) -> tuple[str, str]:
            try:
                return await self.fetch(url)
            except ImageFetchError as exc:
                raise ImageFetchError(f"The image at {url[:200]} could not be fetched: {exc}") from None

        unique = list(dict.fromkeys(urls))
        results = await asyncio.gather(*(one(url) for url in unique))
        return dict(zip(unique, results, strict=True))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
