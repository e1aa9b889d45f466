"""How long an uploaded audio file plays, read offline from the file itself (mutagen), for per-second billing.

Whisper bills by audio length. The upstream only reports it in `verbose_json` replies, so for every other
response format the gateway measures the upload before sending it; a file it cannot measure is sent asking
for `verbose_json`, and the reply is converted back to the format the client asked for.
"""

from __future__ import annotations

import io
import math
from decimal import Decimal

# The containers Whisper accepts, by their leading bytes.
_SIGNATURES = (
    (0, b"RIFF"),  # wav
    (0, b"ID3"),  # mp3 with tags
    (0, b"\xff\xfb"),
    (0, b"\xff\xf3"),
    (0, b"\xff\xf2"),
    (0, b"\xff\xe3"),  # bare mpeg audio frames
    (0, b"fLaC"),  # flac
    (0, b"OggS"),  # ogg / opus
    (4, b"ftyp"),  # mp4 / m4a
    (0, b"\x1a\x45\xdf\xa3"),  # webm / matroska (EBML)
)
SUPPORTED_FORMATS = "flac, m4a, mp3, mp4, mpeg, mpga, oga, ogg, wav, webm"


def looks_like_audio(data: bytes) -> bool:
    return any(data[offset : offset + len(magic)] == magic for offset, magic in _SIGNATURES)


def duration_seconds(data: bytes) -> Decimal | None:
    """The playing time, or None when the container does not say (e.g. a streamed webm recording)."""
    import mutagen  # loaded on the first audio upload only

    try:
        parsed = mutagen.File(io.BytesIO(data))
    except Exception:  # mutagen raises many kinds of errors on files it half-recognises
        return None
    length = getattr(getattr(parsed, "info", None), "length", None)
    if not length or length <= 0 or math.isinf(length) or math.isnan(length):
        return None
    return Decimal(repr(float(length)))


def billable_seconds(duration: Decimal | float) -> int:
    """Whole seconds, rounded up: a 2.5 s file is billed as 3 s."""
    return max(1, math.ceil(Decimal(repr(duration)) if isinstance(duration, float) else duration))
