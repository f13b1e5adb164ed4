"""Serving a recording in parts: the HTTP ``Range`` request header (RFC 9110
§14) read against the file's size. Pure: no I/O.

Only what a player needs: one range of bytes (``bytes=a-b``, ``bytes=a-``,
``bytes=-n``). As RFC 9110 allows, a header this does not serve is ignored
and the whole file sent (another unit, bad syntax, several ranges: browsers
ask for one); a well-formed range that starts past the end cannot be
satisfied (416).
"""

from __future__ import annotations

from dataclasses import dataclass

MEDIA_TYPES = {".wav": "audio/wav", ".gsm": "audio/x-gsm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg"}


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int            # inclusive, as Content-Range writes it

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(ValueError):
    """The range lies outside the file: answer 416 with ``Content-Range: bytes */size``."""


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text and text.isascii() and text.isdecimal() and len(text) <= 18 else None


def requested_range(header: str | None, size: int, *, if_range: str | None = None,
                    etag: str | None = None) -> ByteRange | None:
    """The part of a ``size``-byte file the ``Range`` header asks for; None for
    the whole file. ``if_range``: the request's If-Range, honoured only when it
    is the file's (strong) ``etag``; anything else gets the whole file."""
    if header is None:
        return None
    if if_range is not None and (etag is None or if_range.strip() != etag):
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    if first.strip() == "":                      # bytes=-n: the last n bytes
        suffix = _number(last)
        if suffix is None:
            return None
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1)
    start = _number(first)
    end = _number(last) if last.strip() else size - 1
    if start is None or end is None or (last.strip() and end < start):
        return None
    if start >= size:
        raise Unsatisfiable(header)
    return ByteRange(start, min(end, size - 1))


def media_type(path: str) -> str:
    dot = path.rfind(".")
    return MEDIA_TYPES.get(path[dot:].lower(), "application/octet-stream") if dot >= 0 else "application/octet-stream"
