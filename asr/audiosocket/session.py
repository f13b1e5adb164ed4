"""One call's AudioSocket connection, as its owner (the voice menu) sees it.

Audio from the caller goes to the call's recognition stream; recognition
results, keys and the end of the connection come out of the session as events,
in order (``async for event in session``). The owner can play audio back to
the caller (a prompt, stopped by barge-in), hang up the AudioSocket (``00 00 00``)
or close it; in both cases the call itself goes on in the dialplan (fact 30).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import AsyncIterator, Sequence

from asr.audiosocket.events import Dtmf, Ended, SessionEvent
from asr.audiosocket.framing import Frame, FrameDecoder, Kind, ProtocolError, audio_frames, hangup_frame
from asr.engine.pool import AsrUnavailable, RecognizerPool
from asr.engine.results import Partial, StreamFailed
from hotline.settings import AsrSettings
from asr.engine.stream import Stream
from hotline.logs import bound_call, get_logger

log = get_logger(__name__)

OWNER_REASONS = ("closed", "hung_up", "shutdown", "unclaimed", "never_connected")
MAX_COALESCE = 50            # frames decoded in one job when decoding lags (1 s)
PLAYBACK_LEAD = 0.06         # seconds of prompt audio sent ahead of real time
HANGUP_GRACE = 2.0           # Asterisk closes after our 00 00 00; if not, we do


class CallSession:
    """Created by :meth:`AudioSocketServer.session` (owner first) or by the
    server when the connection arrives first; see the module docstring."""

    def __init__(self, call_uuid: uuid.UUID, settings: AsrSettings, *, call_id: str | None = None,
                 grammar: Sequence[str] | None = None):
        self.uuid = call_uuid
        self.call_id = call_id or str(call_uuid)
        self.grammar = list(grammar) if grammar is not None else None
        self.claimed = False
        self.attached = False        # a connection was handed to this session
        self.ended: Ended | None = None
        self._settings = settings
        self._events: asyncio.Queue[SessionEvent] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._done = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._stream: Stream | None = None
        self._owner_reason: tuple[str, str] | None = None
        # The prompt being played: resolving ``_stop`` ends it at once (barge-in,
        # stop_playback); ``_idle`` is set while nothing plays.
        self._stop: asyncio.Future[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._barge_in = False
        self.audio_frames_in = 0
        # Real-time accounting: the time each frame is due if the line runs at
        # real time (re-anchored after gaps such as the ~260 ms around a key), and
        # how far decoding fell behind that (seconds, worst case).
        self._due = float("-inf")
        self.max_lag = 0.0

    # ----- the owner's side -------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while Asterisk's connection is up."""
        return self._connected.is_set() and self.ended is None

    async def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait for Asterisk's connection; False if it did not come in time."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self._connected.is_set()

    async def wait_closed(self) -> Ended:
        """Wait until the session has ended."""
        await self._done.wait()
        assert self.ended is not None
        return self.ended

    def __aiter__(self) -> AsyncIterator[SessionEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[SessionEvent]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, Ended):
                return

    async def next_event(self, timeout: float | None = None) -> SessionEvent | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self._events.get(), timeout)
        except asyncio.TimeoutError:
            return None

    def next_event_nowait(self) -> SessionEvent | None:
        """The next event if one is waiting, else None."""
        try:
            return self._events.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def put_back(self, event: SessionEvent) -> None:
        """Return an event taken with :meth:`next_event_nowait` (to the end of the queue)."""
        self._events.put_nowait(event)

    async def set_grammar(self, phrases: Sequence[str] | None) -> None:
        """Restrict recognition to these phrases from now on (None: free speech).
        An utterance in progress is dropped."""
        self.grammar = list(phrases) if phrases is not None else None
        if self._stream is not None and self._stream.is_open:
            for result in await self._stream.set_grammar(self.grammar):
                self._emit(result)

    async def play(self, pcm: bytes, *, barge_in: bool = True) -> bool:
        """Send audio (8 kHz s16 mono) to the caller at real-time pace. Returns
        True if it played to the end, False if stopped: by :meth:`stop_playback`,
        by the caller speaking or pressing a key (``barge_in``), or by the end of
        the connection. A new play stops the one in progress."""
        if not self.connected or self._writer is None:
            return False
        while self._stop is not None:        # another play: stop it and wait until it has let go
            self.stop_playback()
            await self._idle.wait()
        loop = asyncio.get_running_loop()
        stop = self._stop = loop.create_future()
        self._idle.clear()
        self._barge_in = barge_in
        start = loop.time()
        try:
            for index, frame in enumerate(audio_frames(pcm, self._settings.frame_bytes)):
                if stop.done() or not self.connected or self._writer.is_closing():
                    return False
                self._writer.write(frame)
                await self._writer.drain()
                # Pace to real time: the next frame is due then, unless stopped before.
                delay = start + (index + 1) * 0.02 - PLAYBACK_LEAD - loop.time()
                if delay > 0 and not stop.done():
                    await asyncio.wait((stop,), timeout=delay)
            return not stop.done()
        except ConnectionError:
            return False
        finally:
            self._stop = None
            self._idle.set()

    def stop_playback(self) -> None:
        """Stop the prompt being played (at once; nothing if none plays)."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    @property
    def playing(self) -> bool:
        """True while :meth:`play` is sending audio."""
        return self._stop is not None

    async def hangup(self) -> None:
        """Send ``00 00 00``: Asterisk leaves AudioSocket() and the call continues
        in the dialplan (it is not hung up)."""
        if self._writer is None or self.ended is not None:
            await self.close()
            return
        self._owner_reason = self._owner_reason or ("hung_up", "")
        with contextlib.suppress(ConnectionError):
            self._writer.write(hangup_frame())
            await self._writer.drain()
        asyncio.get_running_loop().call_later(HANGUP_GRACE, self._close_transport)

    async def close(self, reason: str = "closed") -> None:
        """Close the connection (the call continues in the dialplan) and wait
        for the session to end. Closing a session that never connected ends it
        with ``never_connected``."""
        if self.ended is not None:
            return
        self._owner_reason = self._owner_reason or (reason, "")
        if self._writer is None:
            self._finish(Ended("never_connected" if reason == "closed" else reason))
            return
        self._close_transport()
        await self._done.wait()

    # ----- the server's side ------------------------------------------------

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  decoder: FrameDecoder, frames: list[Frame], pool: RecognizerPool | None,
                  error: ProtocolError | None = None) -> None:
        """Serve the connection until it ends (called by the server with the
        frames read after the UUID frame, and the error that followed them, if any)."""
        self.attached = True
        self._writer = writer
        self._connected.set()
        self._log("info", "asr.audiosocket_connected", peer=str(writer.get_extra_info("peername")))
        await self._open_stream(pool)
        audio: asyncio.Queue[tuple[bytes, float, float] | None] = asyncio.Queue()
        decoding = asyncio.create_task(self._decode(audio))
        reason, detail = "internal_error", ""
        try:
            reason, detail = await self._read(reader, decoder, frames, error, audio)
        except Exception as exc:  # a bug must end this call's session, not the server
            self._log("exception", "asr.audiosocket_failed", error=repr(exc))
            detail = repr(exc)
        finally:
            audio.put_nowait(None)
            if reason in OWNER_REASONS:
                decoding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await decoding
            await self._end_stream(flush=reason not in OWNER_REASONS)
            self._close_transport()
            self._finish(Ended(reason, detail))

    async def _open_stream(self, pool: RecognizerPool | None) -> None:
        try:
            if pool is None:
                raise AsrUnavailable("no speech model is loaded")
            self._stream = await pool.open_stream(self.call_id, self.grammar)
        except AsrUnavailable as exc:
            self._log("warning", "asr.stream_unavailable", error=str(exc))
            self._emit(StreamFailed("unavailable", str(exc)))

    async def _read(self, reader: asyncio.StreamReader, decoder: FrameDecoder, frames: list[Frame],
                    error: ProtocolError | None, audio: asyncio.Queue) -> tuple[str, str]:
        while True:
            for frame in frames:
                end = self._on_frame(frame, audio)
                if end is not None:
                    return end
            if error is not None:
                self._log("warning", "asr.audiosocket_protocol_error", error=str(error))
                return "protocol_error", str(error)
            if self._owner_reason:
                return self._owner_reason
            try:
                data = await reader.read(65536)
            except (ConnectionError, OSError) as exc:
                return self._owner_reason or ("eof", f"connection error: {exc!r}")
            if not data:
                if self._owner_reason:
                    return self._owner_reason
                detail = f"closed inside a frame ({decoder.pending} bytes)" if decoder.pending else ""
                return "eof", detail
            try:
                frames = decoder.feed(data)
            except ProtocolError as exc:
                frames, error = exc.frames, exc

    def _on_frame(self, frame: Frame, audio: asyncio.Queue) -> tuple[str, str] | None:
        loop = asyncio.get_running_loop()
        if frame.kind is Kind.AUDIO:
            self.audio_frames_in += 1
            now = loop.time()
            self._due = max(self._due + len(frame.payload) / (2 * self._settings.sample_rate), now)
            audio.put_nowait((frame.payload, now, self._due))
        elif frame.kind is Kind.DTMF:
            self._log("info", "asr.dtmf", digit=frame.digit())
            self._emit(Dtmf(frame.digit(), loop.time()))
        elif frame.kind is Kind.HANGUP:
            return "hangup_frame", ""
        elif frame.kind is Kind.ERROR:
            self._log("warning", "asr.audiosocket_error_frame", code=frame.error_code())
            return "error_frame", frame.error_code()
        elif frame.kind is Kind.UUID and frame.uuid() != self.uuid:
            self._log("warning", "asr.audiosocket_second_uuid", other=str(frame.uuid()))
        return None

    async def _decode(self, audio: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await audio.get()
            if item is None:
                return
            chunks, received_at, first_due, last_due = [item[0]], item[1], item[2], item[2]
            last = False
            # One frame per job while decoding keeps up; when it lags, whatever
            # has queued up goes in one job. (Always gathering 60-100 ms per job
            # was measured too: no more calls per machine, later results.)
            while len(chunks) < MAX_COALESCE and not audio.empty():
                more = audio.get_nowait()
                if more is None:
                    last = True
                    break
                chunks.append(more[0])
                last_due = more[2]
            stream = self._stream
            if stream is not None and stream.is_open:
                behind = loop.time() - first_due
                if behind > self._settings.max_lag:
                    self._log("warning", "asr.stream_overloaded", behind_seconds=round(behind, 2))
                    self._emit(await stream.fail("overloaded", f"decoding {behind:.1f} s behind real time"))
                else:
                    for result in await stream.feed(b"".join(chunks), received_at):
                        self._emit(result)
                    self.max_lag = max(self.max_lag, loop.time() - last_due)
            if last:
                return

    @property
    def stream(self) -> Stream | None:
        """The call's recognition stream (None without a model), for statistics."""
        return self._stream

    async def _end_stream(self, flush: bool) -> None:
        stream = self._stream
        if stream is None or not stream.is_open:
            return
        if flush:
            for result in await stream.finish():
                self._emit(result)
        else:
            await stream.close()

    def _emit(self, event: SessionEvent) -> None:
        if isinstance(event, StreamFailed):
            self._log("warning", "asr.stream_failed", reason=event.reason, detail=event.detail)
        if self._barge_in and (isinstance(event, Dtmf) or (isinstance(event, Partial) and event.text)):
            self.stop_playback()
        self._events.put_nowait(event)

    def _close_transport(self) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()

    def _finish(self, ended: Ended) -> None:
        if self.ended is not None:
            return
        self.ended = ended
        level = "warning" if ended.reason in ("protocol_error", "error_frame", "internal_error",
                                              "unclaimed") else "info"
        self._log(level, "asr.audiosocket_ended", reason=ended.reason, detail=ended.detail or None,
                  audio_frames=self.audio_frames_in)
        self._events.put_nowait(ended)
        self._done.set()

    def _log(self, level: str, event: str, **fields: object) -> None:
        with bound_call(self.call_id, audiosocket_uuid=str(self.uuid)):
            getattr(log, level)(event, **fields)
