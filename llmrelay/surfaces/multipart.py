"""multipart/form-data: read the fields of an upload, and write it back with a field changed.

Uploads (audio, images) are parsed once to read their fields and validate them, then forwarded as the
client sent them; only a mapped model name makes the gateway re-encode the form (same boundary, same parts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmrelay.relay.errors import bad_request

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DISPOSITION_PARAM = re.compile(r';\s*([a-zA-Z*]+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class FormPart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes
    headers: bytes  # the part's raw header block, kept so a rebuilt form is the same apart from the change

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class MultipartForm:
    content_type: str
    boundary: bytes
    raw: bytes
    parts: tuple[FormPart, ...]

    def field(self, name: str) -> str | None:
        """A text field's value (the first, if repeated)."""
        return next((p.text for p in self.parts if p.name == name and p.filename is None), None)

    def fields(self, name: str) -> list[str]:
        """Every value of a repeated field, such as `timestamp_granularities[]`."""
        return [p.text for p in self.parts if p.name == name and p.filename is None]

    def file(self, name: str) -> FormPart | None:
        return next((p for p in self.parts if p.name == name and p.filename is not None), None)

    def with_fields(self, changes: dict[str, str]) -> bytes:
        """The form encoded again, with text fields set (replaced in place, or added at the end)."""
        delimiter = b"--" + self.boundary
        chunks: list[bytes] = []
        done: set[str] = set()
        for part in self.parts:
            data = part.data
            if part.name in changes and part.filename is None:
                if part.name in done:
                    continue
                data = changes[part.name].encode()
                done.add(part.name)
            chunks.append(delimiter + b"\r\n" + part.headers + b"\r\n\r\n" + data + b"\r\n")
        for name, value in changes.items():
            if name not in done:
                header = f'Content-Disposition: form-data; name="{name}"'.encode()
                chunks.append(delimiter + b"\r\n" + header + b"\r\n\r\n" + value.encode() + b"\r\n")
        return b"".join(chunks) + delimiter + b"--\r\n"


def parse_multipart(raw: bytes, content_type: str | None) -> MultipartForm:
    """Split a multipart/form-data body into its parts; a malformed body is a 400."""
    if not content_type or not content_type.lower().startswith("multipart/form-data"):
        raise bad_request("This endpoint takes multipart/form-data (send the file as a form upload).")
    match = _BOUNDARY.search(content_type)
    if not match:
        raise bad_request("The multipart Content-Type has no boundary.")
    boundary = match.group(1).encode()
    delimiter = b"--" + boundary
    if not raw.startswith(delimiter):
        raw_start = raw.find(b"\r\n" + delimiter)
        if raw_start < 0:
            raise bad_request("The multipart body does not contain its boundary.")
    sections = (b"\r\n" + raw).split(b"\r\n" + delimiter)
    parts: list[FormPart] = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            break  # the closing delimiter
        header_end = section.find(b"\r\n\r\n")
        if not section.startswith(b"\r\n") or header_end < 0:
            raise bad_request("A multipart part is malformed.")
        headers = section[2:header_end]
        parts.append(_part(headers, section[header_end + 4 :]))
    else:
        raise bad_request("The multipart body is not terminated.")
    return MultipartForm(content_type, boundary, raw, tuple(parts))


def _part(headers: bytes, data: bytes) -> FormPart:
    name = filename = content_type = None
    for line in headers.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-disposition":
            params = {k.lower(): v.replace('\\"', '"') for k, v in _DISPOSITION_PARAM.findall(value)}
            name, filename = params.get("name"), params.get("filename")
        elif key == "content-type":
            content_type = value.strip()
    if name is None:
        raise bad_request("A multipart part has no name.")
    return FormPart(name, filename, content_type, data, headers)
