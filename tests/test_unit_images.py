"""The image fetcher refuses what it must (private and reserved addresses however they are written, other
schemes, non-images, oversized images) and fetches what it may, following redirects."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from llmrelay.config import ImageFetchConfig
from llmrelay.providers.images import ImageFetcher, ImageFetchError, refuse_private
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import png_bytes


def fetch(config: ImageFetchConfig, url: str) -> tuple[str, str]:
    async def run() -> tuple[str, str]:
        fetcher = ImageFetcher(config)
        try:
            return await fetcher.fetch(url)
        finally:
            await fetcher.close()

    return asyncio.run(run())


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
    ],
)
def test_private_and_reserved_addresses_are_refused(address: str) -> None:
    with pytest.raises(ImageFetchError, match="private or reserved"):
        refuse_private(address)


def test_public_addresses_pass() -> None:
    refuse_private("8.8.8.8")
    refuse_private("2606:4700:4700::1111")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://localhost:9/x.png", "private or reserved"),  # a name: refused at connect time, after DNS
        ("http://[::ffff:127.0.0.1]:9/x.png", "private or reserved"),
        ("http://127.1:9/x.png", ""),  # not a valid address to aiohttp: refused either way
        ("ftp://example.com/x.png", r"only http\(s\)"),
        ("file:///etc/passwd", r"only http\(s\)"),
    ],
)
def test_refused_urls(url: str, reason: str) -> None:
    with pytest.raises(ImageFetchError, match=reason):
        fetch(ImageFetchConfig(), url)


@pytest.fixture(scope="module")
def images() -> Iterator[FakeGemini]:
    fake = FakeGemini().start()  # serves /img/red.png and /img/redirect on loopback
    yield fake
    fake.stop()


def test_an_allowed_fetch_follows_a_redirect(images: FakeGemini) -> None:
    mime, data = fetch(ImageFetchConfig(allow_private_addresses=True), f"{images.base_url}/img/redirect")
    assert mime == "image/png" and data.startswith("iVBORw0")
    assert len(data) >= len(png_bytes())


def test_an_oversized_image_and_a_non_image_are_refused(images: FakeGemini) -> None:
    with pytest.raises(ImageFetchError, match="larger than"):
        fetch(ImageFetchConfig(allow_private_addresses=True, max_bytes=10), f"{images.base_url}/img/red.png")
    with pytest.raises(ImageFetchError):
        fetch(ImageFetchConfig(allow_private_addresses=True), f"{images.base_url}/v1beta/models")
