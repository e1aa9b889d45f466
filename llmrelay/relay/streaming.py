"""Server-sent events: split an upstream byte stream into whole events as bytes arrive.

There is no line-length limit: an event (a tool call with a large argument, an image) may be megabytes,
and the buffer grows to hold it.
"""

from __future__ import annotations


class SseSplitter:
    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """Complete events (each ending in a blank line) found so far; the rest waits for more bytes."""
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:  # CRLF and LF framing are both legal SSE; normalise to LF
            buffer = buffer.replace(b"\r\n", b"\n")
        events = []
        start = 0
        while True:
            end = buffer.find(b"\n\n", start)
            if end < 0:
                break
            if end > start:
                events.append(buffer[start : end + 2])
            start = end + 2
        self._buffer = buffer[start:] if start else buffer
        return events

    def remainder(self) -> bytes:
        """Bytes after the last complete event (a stream cut off mid-event)."""
        return self._buffer
