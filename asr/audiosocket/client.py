"""The Asterisk side of an AudioSocket connection, for tests, benchmarks and
tools that push recorded audio through the real server (``hotline asr eval``).

It sends what Asterisk sends (UUID frame, 320-byte audio frames, DTMF), paced
like a phone line or as fast as possible, and collects what the server sends
back (audio, hangup)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from asr.audio.pcm import FRAME_BYTES, frames as split_frames
from asr.audiosocket.framing import Frame, FrameDecoder, Kind, encode, uuid_frame


class AudioSocketClient:
    """One connection to an AudioSocket server, behaving like Asterisk."""

    def __init__(self, call_uuid: uuid.UUID | None = None):
        self.uuid = call_uuid or uuid.uuid4()
        self.received: list[Frame] = []      # frames the server sent
        self.closed_by_server = asyncio.Event()   # the server closed its end
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task | None = None
        self.frames_sent = 0

    async def connect(self, host: str, port: int, send_uuid: bool = True, *, source: str | None = None) -> None:
        """Open the TCP connection and (normally) send the UUID frame. ``source``:
        the local address to connect from (e.g. another 127.0.0.x)."""
        local = (source, 0) if source else None
        self._reader, self._writer = await asyncio.open_connection(host, port, local_addr=local)
        self._reading = asyncio.create_task(self._read())
        if send_uuid:
            await self.send_raw(uuid_frame(self.uuid))

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (for broken input and captured byte streams)."""
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    def send_nowait(self, data: bytes) -> None:
        """Write bytes without waiting for the socket to take them (see :attr:`unsent`)."""
        assert self._writer is not None
        self._writer.write(data)

    async def send_audio(self, pcm: bytes, *, pace: float | None = 0.02, start: float | None = None,
                         frame_bytes: int = FRAME_BYTES) -> None:
        """Send audio as 20 ms frames. ``pace``: seconds per frame on an absolute
        schedule from ``start`` (event-loop time; default now), like a phone line;
        None sends as fast as the socket takes it."""
        loop = asyncio.get_running_loop()
        start = loop.time() if start is None else start
        for index, chunk in enumerate(split_frames(pcm, frame_bytes)):
            if pace is not None:
                delay = start + index * pace - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.send_raw(encode(Kind.AUDIO, chunk))
            self.frames_sent += 1

    async def send_dtmf(self, digit: str) -> None:
        """Send one key, as Asterisk does when the key is released."""
        await self.send_raw(encode(Kind.DTMF, digit.encode("ascii")))

    async def send_hangup(self) -> None:
        """Send ``00 00 00``."""
        await self.send_raw(encode(Kind.HANGUP))

    async def close(self, *, abort: bool = False) -> None:
        """Close the socket, as Asterisk does when the caller hangs up. With
        ``abort``, or when the server has not taken everything sent, the
        connection is reset at once (unsent bytes are dropped)."""
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        if self._writer is not None and not self._writer.is_closing():
            if abort or self._writer.transport.get_write_buffer_size():
                self._writer.transport.abort()
            else:
                self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    @property
    def unsent(self) -> int:
        """Bytes written but not yet taken by the socket (the server reads slower)."""
        return self._writer.transport.get_write_buffer_size() if self._writer is not None else 0

    def audio_received(self) -> bytes:
        """All audio the server sent back, joined."""
        return b"".join(f.payload for f in self.received if f.kind is Kind.AUDIO)

    async def _read(self) -> None:
        assert self._reader is not None
        decoder = FrameDecoder(65535)
        try:
            while data := await self._reader.read(65536):
                self.received.extend(decoder.feed(data))
        except ConnectionError:
            pass
        self.closed_by_server.set()
