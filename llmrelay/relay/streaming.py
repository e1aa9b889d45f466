"""Server-sent events: split an upstream byte stream into whole events as bytes arrive, and translate a
stream between wire formats.

There is no line-length limit: an event (a tool call with a large argument, an image) may be megabytes,
and the buffer grows to hold it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from llmrelay.formats.base import StreamDecoder, StreamEncoder
from llmrelay.formats.openai import generated_texts
from llmrelay.metering.pricing import Usage
from llmrelay.providers.base import StreamTap
from llmrelay.providers.connections import UpstreamConnection
from llmrelay.relay.errors import scrub_bytes
from llmrelay.surfaces.http import BodyWriter


class SseSplitter:
    __slots__ = ("_scanned", "partial")

    def __init__(self) -> None:
        # The bytes of an event not complete yet. Changed in place only, so that a holder of it (EventRelay)
        # can tell cheaply whether an event is in progress.
        self.partial = bytearray()
        self._scanned = 0  # bytes of the partial event already searched for an event end

    def feed(self, data: bytes) -> list[bytes]:
        """Complete events (each ending in a blank line) found so far; the rest waits for more bytes.

        Only new bytes are searched, so an event arriving in many small reads costs linear time.
        """
        buffer = self.partial
        if not buffer and len(data) > 2:
            # Events of several lines (Anthropic's `event:` and `data:`), or several events in one read (a burst,
            # or a loaded loop reading late): one split. Gemini ends lines with CRLF: a read ending in a whole
            # event is normalised in one pass; any other CR may pair with an LF of the next read.
            whole = data.replace(b"\r\n", b"\n") if data.endswith(b"\r\n\r\n") else data
            if whole.find(b"\r") < 0:
                if whole.find(b"\n\n") == len(whole) - 2:
                    return [whole]
                *events, rest = whole.split(b"\n\n")
                if rest:
                    buffer += rest  # no blank line in it: searched already
                    self._scanned = len(buffer)
                return [event + b"\n\n" for event in events if event]
        old_end = self._scanned
        buffer += data
        normalise_from = max(old_end - 1, 0)  # a CR and its LF may straddle two reads
        if buffer.find(b"\r", normalise_from) >= 0:  # CRLF and LF framing are both legal SSE; normalise to LF
            buffer[normalise_from:] = buffer[normalise_from:].replace(b"\r\n", b"\n")
        # The old bytes held no blank line; a new one can begin at most two bytes back ("\n" + "\r|\n").
        search_from = max(old_end - 2, 0)
        events = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", search_from)
            if end < 0:
                break
            if end > start:
                events.append(bytes(buffer[start : end + 2]))
            start = search_from = end + 2
        if start:
            del buffer[:start]
        self._scanned = len(buffer)
        return events

    def remainder(self) -> bytes:
        """Bytes after the last complete event: a final event some servers end without the blank line, or
        the part of an event that a dropped connection cut off."""
        return bytes(self.partial)

    def take_remainder(self) -> bytes:
        """The remainder, which the splitter then forgets (the stream has ended)."""
        rest = self.remainder()
        self.partial.clear()
        self._scanned = 0
        return rest


class BodyRelay:
    """Relays an upstream's body to the client as its bytes arrive, called from the upstream connection's data
    callback (no task runs per read): scrubbed of the channel's secrets and written to the client; a client that
    falls behind pauses the upstream."""

    __slots__ = ("_body_write", "_secrets", "_upstream")

    def __init__(self, body: BodyWriter, upstream: UpstreamConnection, secrets: tuple[bytes, ...]) -> None:
        self._body_write = body.write  # bound once: this runs for every read
        self._upstream = upstream
        self._secrets = secrets

    def feed(self, data: bytes) -> None:
        if not self._body_write(scrub_bytes(data, self._secrets)):
            self._upstream.pause_reading()


class EventRelay:
    """Relays an upstream's event stream: whole events are split out of each read and passed through the tap;
    what the tap gives the client is scrubbed of the channel's secrets (a secret cannot straddle two events)
    and written, and a client that falls behind pauses the upstream.

    This runs for every event, tens of thousands of times a second (with 2,000 token-paced streams the relay's
    Python per event was as much as the kernel's read of it). The usual read, one whole event, is relayed by one
    compiled call where the tap offers one (the OpenAI passthrough's one-line event; an Anthropic text delta or a
    Gemini response of one text, for an OpenAI client), else, when it is one line, recognised here without a call
    to the splitter. With that compiled call and a body writer that takes framed chunks, `whole_chunks` lets the
    upstream connection's chunk reader relay such events straight from its reads, without calling `feed` at all
    (providers/connections.py)."""

    __slots__ = (
        "_compiled",
        "_partial",
        "_pause",
        "_push",
        "_secrets",
        "_split",
        "_splitter",
        "_tap_feed",
        "_write",
        "whole_chunks",
    )

    def __init__(
        self, tap: StreamTap, body: BodyWriter, upstream: UpstreamConnection, secrets: tuple[bytes, ...]
    ) -> None:
        # Bound methods kept: looked up once, not per event.
        self._tap_feed = tap.feed
        self._splitter = SseSplitter()
        self._split = self._splitter.feed
        self._partial = self._splitter.partial
        self._write = body.write
        self._push = body.push
        self._pause = upstream.pause_reading
        self._secrets = secrets
        # The tap's compiled path for the usual read, where it has one (see the class): the checks, the
        # tap's work and the secret scan in one call, ~10,000 fewer instructions per event (relay/_eventscan.c).
        compiled = getattr(tap, "compiled_feed", None)
        self._compiled = compiled(secrets, self._partial) if compiled is not None else None
        write_chunk = getattr(body, "write_chunk", None)
        # What the upstream connection's chunk reader needs to relay a whole chunk itself (providers/connections.py).
        self.whole_chunks = (self._compiled, write_chunk) if self._compiled and write_chunk else None

    def feed_first(self, data: bytes) -> None:
        """Relay what the upstream sent before the relay began (from the request's task), at once."""
        self.feed(data)
        self._push()

    def feed(self, data: bytes) -> None:
        if self._compiled is not None:
            out = self._compiled(data)
            if out is not None:
                if not self._write(out):
                    self._pause()
                return
        last = len(data) - 1
        # One whole event of one line (OpenAI's), with no CRLF to normalise: its first line break is its
        # second-last byte (a one-byte search, several times cheaper than one for the blank line). A CR elsewhere
        # in such an event is not followed by a line feed, and the splitter would leave it as it is too.
        if (
            last > 1
            and data[last] == 10
            and data[last - 2] != 13
            and not self._partial
            and data.find(b"\n") == last - 1
        ):
            out = self._tap_feed(data)
        else:
            events = self._split(data)
            if len(events) == 1:
                out = self._tap_feed(events[0])
            else:
                feed = self._tap_feed
                out = b"".join([piece for event in events if (piece := feed(event))])
        if out and not self._write(scrub_bytes(out, self._secrets)):
            self._pause()

    def finish(self) -> None:
        """The upstream's body has ended: relay a final event that it ended without the blank line."""
        last = self._splitter.take_remainder()
        if last.endswith(b"\n"):
            self.feed(last + b"\n")


# A text whose JSON form (\u0000...) no real chunk's event holds: where it lands in an encoded chunk is where a
# compiled path puts a text delta's text (TranslatingTap.compiled_feed).
TEXT_MARKER = "\x00\x01llmrelay\x01\x00"
_MARKER_JSON = orjson.dumps(TEXT_MARKER)[1:-1]


class TranslatingTap:
    """A stream tap for a client whose format differs from the upstream's: the upstream's decoder turns
    each event into internal chunks, the client's encoder writes them in the client's format."""

    __slots__ = ("_compiled", "_decoder", "_encoder", "_template_version", "_template_waits", "_texts")

    def __init__(self, decoder: StreamDecoder, encoder: StreamEncoder) -> None:
        self._decoder = decoder
        self._encoder = encoder
        # The generated text, kept for counting should the upstream report no usage: the texts rather than the
        # chunks, which are ~1 KB of dicts each (2,000 streams of 50 events held ~100 MB of them). The compiled
        # path keeps a text as its JSON string's content (bytes), decoded only if it is counted.
        self._texts: list[str | bytes] = []
        self._compiled: Any = None
        self._template_version = -1  # the decoder's text_chunk_version the template was made for
        self._template_waits = False  # there is a text chunk, but the encoder could not yet make its template

    @property
    def usage(self) -> Usage | None:
        return self._decoder.usage

    @property
    def done(self) -> bool:
        return self._decoder.done

    @property
    def error_message(self) -> str | None:
        return self._decoder.error_message

    def compiled_feed(self, secrets: tuple[bytes, ...], partial: bytearray) -> Callable[[bytes], bytes | None] | None:
        """`feed` for the upstream's usual event, a text delta, compiled, where the decoder has such a path and
        the encoder can say what its event for a text chunk looks like (Anthropic's or Gemini's stream to an OpenAI
        client): the client's event is that template around the delta's text, copied without decoding. The
        template follows the stream's state: it is made again after an event `feed` takes that changed what a text
        chunk depends on (the decoder's `text_chunk_version`). None where there is no such path; see
        OpenAIStreamTap.compiled_feed for `secrets` and `partial`."""
        make = getattr(self._decoder, "compiled_text_deltas", None)
        if (
            make is None
            or not hasattr(self._decoder, "text_chunk_version")
            or not hasattr(self._encoder, "event_template")
        ):
            return None
        self._compiled = make(self._texts, secrets, partial)
        if self._compiled is not None:
            self._set_template()
        return self._compiled

    def _set_template(self) -> None:
        """The template for the stream's state now: the encoder's event for the decoder's text chunk."""
        self._template_version = self._decoder.text_chunk_version  # type: ignore[attr-defined]  # compiled_feed
        chunk = self._decoder.text_chunk(TEXT_MARKER)  # type: ignore[attr-defined]
        template = None if chunk is None else self._encoder.event_template(chunk, _MARKER_JSON)  # type: ignore[attr-defined]
        self._compiled.template = template
        self._template_waits = chunk is not None and template is None  # until the encoder has seen the first chunk

    def feed(self, event: bytes) -> bytes | None:
        chunks = self._decoder.feed(event)
        out = None
        if chunks:
            self._texts += generated_texts(chunks)
            encode = self._encoder.feed
            out = b"".join([encode(chunk) for chunk in chunks]) or None
        # The template again where this event changed what a text gives (an id, a model), or the encoder can now
        # make it: a stream whose events mostly take this path (tool calls, thinking, a burst read whole) pays a
        # comparison per event, not a chunk's encoding.
        if self._compiled is not None and (
            self._template_waits or self._decoder.text_chunk_version != self._template_version  # type: ignore[attr-defined]
        ):
            self._set_template()
        return out

    def finish(self, usage: Usage) -> bytes:
        return self._encoder.finish(usage)

    def completion_texts(self) -> list[str]:
        return [text if isinstance(text, str) else orjson.loads(b'"%b"' % text) for text in self._texts]


class JsonArrayTap:
    """Re-frames a tap's SSE output (`data: <json>` events) as one streamed JSON array, the form Gemini's
    `streamGenerateContent` takes without `alt=sse`: `[` before the first element, `,` between elements,
    `]` at the end, whether the stream ends well or with an error element. The JSON is not decoded."""

    __slots__ = ("_inner", "_started")

    def __init__(self, inner: StreamTap) -> None:
        self._inner = inner
        self._started = False

    @property
    def usage(self) -> Usage | None:
        return self._inner.usage

    @property
    def done(self) -> bool:
        return self._inner.done

    @property
    def error_message(self) -> str | None:
        return self._inner.error_message

    def _elements(self, sse: bytes | None) -> bytes:
        """Each event's data (its `data:` lines joined, as SSE defines) as the array's next element; comments
        and keep-alives have none. JSON cannot hold a raw line break, so CRLF framing is simply normalised."""
        out = []
        for event in (sse or b"").replace(b"\r\n", b"\n").split(b"\n\n"):
            lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
            if lines:
                out.append((b",\r\n" if self._started else b"[") + b"\n".join(lines))
                self._started = True
        return b"".join(out)

    def feed(self, event: bytes) -> bytes | None:
        return self._elements(self._inner.feed(event)) or None

    def finish(self, usage: Usage) -> bytes:
        return self._close(self._inner.finish(usage))

    def fail(self, error_event: bytes) -> bytes:
        return self._close(error_event)

    def _close(self, sse: bytes) -> bytes:
        return (self._elements(sse) or (b"" if self._started else b"[")) + b"]"

    def completion_texts(self) -> list[str]:
        return self._inner.completion_texts()
