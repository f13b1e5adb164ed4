"""AudioSocket framing, pure: bytes in, frames out, and frames to bytes.

A frame is one kind byte, a 2-byte big-endian payload length, then the payload
(facts 29-30 of tests/fixtures/asterisk/README.md). TCP delivers arbitrary
chunks, so :class:`FrameDecoder` keeps a partial frame until the rest arrives.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Iterator

from asr.audio.pcm import FRAME_BYTES, frames as split_frames

HEADER_BYTES = 3
AUDIO_FRAME_BYTES = FRAME_BYTES  # 320: 20 ms of 8 kHz 16-bit mono
DTMF_DIGITS = frozenset(b"0123456789*#ABCD")
ERROR_CODES = {0x00: "none", 0x01: "hangup", 0x02: "frame forwarding", 0x04: "memory"}


class Kind(enum.IntEnum):
    HANGUP = 0x00
    UUID = 0x01
    DTMF = 0x03
    AUDIO = 0x10                 # signed linear 16-bit, 8 kHz, mono
    ERROR = 0xFF


class ProtocolError(ValueError):
    """Bytes that are not AudioSocket; the connection cannot go on. ``frames``
    holds the good frames decoded from the same read before the bad bytes."""

    def __init__(self, message: str, frames: list["Frame"] | None = None):
        super().__init__(message)
        self.frames = frames or []


@dataclass(frozen=True)
class Frame:
    kind: Kind
    payload: bytes = b""

    def uuid(self) -> uuid.UUID:
        """The call's UUID from a UUID frame (16 raw bytes, not text)."""
        return uuid.UUID(bytes=self.payload)

    def digit(self) -> str:
        """The key from a DTMF frame."""
        return self.payload.decode("ascii")

    def error_code(self) -> str:
        """A readable error code from an error frame."""
        if not self.payload:
            return "unspecified"
        return ERROR_CODES.get(self.payload[0], f"0x{self.payload[0]:02x}")


class FrameDecoder:
    """Incremental decoder. :meth:`feed` returns every complete frame; a frame
    split across reads is kept until its last byte arrives."""

    def __init__(self, max_payload: int = 4096):
        self._buffer = bytearray()
        self._max_payload = max_payload
        self.offset = 0          # stream offset of the next undecoded byte, for messages
        self._broken: ProtocolError | None = None

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes read from the socket; return the frames they complete.
        Raises :class:`ProtocolError` on an unknown kind, an oversized length or
        a payload that does not fit its kind."""
        if self._broken is not None:
            raise ProtocolError(str(self._broken))
        self._buffer += data
        frames: list[Frame] = []
        try:
            self._decode_into(frames)
        except ProtocolError as exc:
            self._broken = exc
            exc.frames = frames
            raise
        return frames

    def _decode_into(self, frames: list[Frame]) -> None:
        while len(self._buffer) >= HEADER_BYTES:
            kind_byte = self._buffer[0]
            length = int.from_bytes(self._buffer[1:3], "big")
            try:
                kind = Kind(kind_byte)
            except ValueError:
                raise ProtocolError(
                    f"unknown frame kind 0x{kind_byte:02x} (length field {length}) at byte {self.offset}"
                ) from None
            if length > self._max_payload:
                raise ProtocolError(
                    f"frame kind 0x{kind_byte:02x} at byte {self.offset} claims {length} bytes "
                    f"(limit {self._max_payload})")
            if len(self._buffer) < HEADER_BYTES + length:
                break
            payload = bytes(self._buffer[HEADER_BYTES:HEADER_BYTES + length])
            _check_payload(kind, payload, self.offset)
            del self._buffer[:HEADER_BYTES + length]
            self.offset += HEADER_BYTES + length
            frames.append(Frame(kind, payload))


def _check_payload(kind: Kind, payload: bytes, offset: int) -> None:
    if kind is Kind.UUID and len(payload) != 16:
        raise ProtocolError(f"UUID frame at byte {offset} has {len(payload)} bytes, not 16")
    if kind is Kind.DTMF and (len(payload) != 1 or payload[0] not in DTMF_DIGITS):
        raise ProtocolError(f"DTMF frame at byte {offset} carries {payload!r}, not one key")
    if kind is Kind.AUDIO and len(payload) % 2:
        raise ProtocolError(f"audio frame at byte {offset} has an odd length {len(payload)}")


def encode(kind: Kind, payload: bytes = b"") -> bytes:
    """One frame as bytes."""
    if len(payload) > 0xFFFF:
        raise ValueError("AudioSocket payloads are at most 65535 bytes")
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


def hangup_frame() -> bytes:
    """``00 00 00``: Asterisk ends AudioSocket() and the call goes on in the dialplan."""
    return encode(Kind.HANGUP)


def uuid_frame(call_uuid: uuid.UUID) -> bytes:
    """The first frame of a connection (Asterisk sends it; tests and tools use this)."""
    return encode(Kind.UUID, call_uuid.bytes)


def audio_frames(pcm: bytes, frame_bytes: int = AUDIO_FRAME_BYTES) -> Iterator[bytes]:
    """Audio as encoded 20 ms frames; the last one is padded with silence."""
    for chunk in split_frames(pcm, frame_bytes):
        yield encode(Kind.AUDIO, chunk)
