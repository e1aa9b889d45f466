"""Canned media for the mock upstream's OpenAI endpoints: a tiny valid PNG, tiny valid silent audio, and
deterministic embedding vectors. Built once at import, so a reply only copies bytes."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import struct
import wave
import zlib


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid RGB PNG of one colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width  # filter type 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


IMAGE_PNG = png_bytes(16, 16, (32, 160, 160))
IMAGE_B64 = base64.b64encode(IMAGE_PNG).decode()
# A data: URL rather than a link to the mock server: the gateway's clients may not reach its loopback address.
IMAGE_URL = f"data:image/png;base64,{IMAGE_B64}"

SPEECH_SECONDS = 0.25


def silent_mp3(frames: int) -> bytes:
    """MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, mono) whose side information is all zero: silence.
    Each frame is 144 * 128000 / 44100 = 417 bytes (no padding)."""
    header = bytes((0xFF, 0xFB, 0x90, 0xC0))
    return (header + bytes(417 - len(header))) * frames


def silent_wav(seconds: float, rate: int = 24_000) -> bytes:
    """A mono 16-bit PCM WAV file of silence."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(2 * round(seconds * rate)))
    return out.getvalue()


SPEECH_MP3 = silent_mp3(round(SPEECH_SECONDS * 44_100 / 1152))  # 1152 samples a frame
SPEECH_WAV = silent_wav(SPEECH_SECONDS)
SPEECH_PCM = bytes(2 * round(SPEECH_SECONDS * 24_000))  # OpenAI's pcm: 24 kHz, 16-bit little-endian, no header
# The audio each response_format gets, and its content type. The mock makes no opus, aac or flac: those get
# WAV, labelled as WAV, so a client that checks finds out rather than failing to decode.
SPEECH: dict[str, tuple[bytes, str]] = {
    "mp3": (SPEECH_MP3, "audio/mpeg"),
    "wav": (SPEECH_WAV, "audio/wav"),
    "pcm": (SPEECH_PCM, "audio/pcm"),
}
SPEECH_FALLBACK = SPEECH["wav"]

DEFAULT_DIMENSIONS = 1536
MODEL_DIMENSIONS = {"text-embedding-3-large": 3072}


def embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on the input (equal inputs, equal vectors): the bytes of a SHAKE-128
    digest of the text, centred and normalised. Cheap enough for load tests, varied enough for clients that
    store and compare vectors."""
    digest = hashlib.shake_128(text.encode()).digest(dimensions)
    values = [byte - 127.5 for byte in digest]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def embedding_base64(vector: list[float]) -> str:
    """A vector as OpenAI's encoding_format=base64 sends it: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
