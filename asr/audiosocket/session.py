"""One call's AudioSocket connection, as its owner (the voice menu) sees it.

Audio from the caller goes to the call's recognition stream; recognition
results, keys and the end of the connection come out of the session as events,
in order (``async for event in session``). The owner can play audio back to
the caller (a prompt, stopped by barge-in), hang up the AudioSocket (``00 00 00``)
or close it; in both cases the call itself goes on in the dialplan (fact 30).

Limits on what one connection can cost (the server's limits are in server.py):

* Pacing: Asterisk sends the line in real time. Audio (and every other frame,
  at least 10 ms each) arriving more than ``max_audio_ahead`` seconds ahead of
  the wall clock since the connection's first frame is a flood: the stream
  fails (``StreamFailed("flood")``: the menu goes to the keypad), the waiting
  audio is dropped, and from then on the connection is read no faster than
  real time (TCP holds the rest back on the sender's side).
* The audio waiting for the decoder is bounded (``max_lag`` + ``max_audio_ahead``
  seconds plus one, in bytes and in frames); what does not fit is dropped and
  counted (``audio_frames_dropped``).
* Nothing is decoded once the connection is over: the waiting audio is dropped
  at EOF, at the caller's hangup frame and when the owner lets go; only the
  decode already running in a worker finishes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from typing import AsyncIterator, Sequence

from asr.audiosocket.events import Dtmf, Ended, SessionEvent
from asr.audiosocket.framing import Frame, FrameDecoder, Kind, ProtocolError, audio_frames, hangup_frame
from asr.engine.pool import AsrUnavailable, RecognizerPool
from asr.engine.results import Final, Partial, StreamFailed
from hotline.settings import AsrSettings
from asr.engine.stream import Stream
from hotline.logs import bound_call, get_logger

log = get_logger(__name__)

OWNER_REASONS = ("closed", "hung_up", "shutdown", "never_connected")
MAX_COALESCE_SECONDS = 1.0   # audio decoded in one job when decoding lags
MIN_FRAME_SECONDS = 0.01     # line time every frame counts at least (Asterisk's smallest packetisation)
PLAYBACK_LEAD = 0.06         # seconds of prompt audio sent ahead of real time
HANGUP_GRACE = 2.0           # Asterisk closes after our 00 00 00; if not, we do


class _AudioQueue:
    """Audio waiting for the decoder: (pcm, received_at, due, turn) items, bounded in
    bytes and in frames. What does not fit is dropped and counted."""

    def __init__(self, max_bytes: int, max_frames: int):
        self._items: collections.deque[tuple[bytes, float, float]] = collections.deque()
        self._bytes = 0
        self._ready = asyncio.Event()
        self.max_bytes = max_bytes
        self.max_frames = max_frames
        self.dropped = 0           # frames that did not fit
        self.high_water = 0        # most frames waiting at once

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: tuple[bytes, float, float, int]) -> bool:
        if len(self._items) >= self.max_frames or self._bytes + len(item[0]) > self.max_bytes:
            self.dropped += 1
            return False
        self._items.append(item)
        self._bytes += len(item[0])
        self.high_water = max(self.high_water, len(self._items))
        self._ready.set()
        return True

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
        self._ready.clear()

    async def take(self, max_bytes: int) -> list[tuple[bytes, float, float, int]]:
        """Wait for audio; return the first item and whatever follows it, up to ``max_bytes``."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        batch = [self._items.popleft()]
        size = len(batch[0][0])
        while self._items and size + len(self._items[0][0]) <= max_bytes:
            item = self._items.popleft()
            size += len(item[0])
            batch.append(item)
        self._bytes -= size
        return batch


class CallSession:
    """Created by :meth:`AudioSocketServer.session` when the call's owner
    registers its UUID; see the module docstring."""

    def __init__(self, call_uuid: uuid.UUID, settings: AsrSettings, *, call_id: str | None = None,
                 grammar: Sequence[str] | None = None):
        self.uuid = call_uuid
        self.call_id = call_id or str(call_uuid)
        self.grammar = list(grammar) if grammar is not None else None
        self.attached = False        # a connection was handed to this session
        self.peer = ""               # the connection's address, once attached
        self.ended: Ended | None = None
        self._settings = settings
        self._events: asyncio.Queue[SessionEvent] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._done = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._stream: Stream | None = None
        # Counts reset_recognition(): audio and results of an earlier turn are dropped.
        self._turn = 0
        self._owner_reason: tuple[str, str] | None = None
        # The prompt being played: resolving ``_stop`` ends it at once (barge-in,
        # stop_playback); ``_idle`` is set while nothing plays.
        self._stop: asyncio.Future[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._barge_in = False
        self._wake = asyncio.Event()     # the owner let go: a held-back read stops waiting
        self.audio_frames_in = 0
        self.audio_frames_decoded = 0    # frames fed to the recogniser
        # Real-time accounting: the time each frame is due if the line runs at
        # real time (re-anchored after gaps such as the ~260 ms around a key), and
        # how far decoding fell behind that (seconds, worst case).
        self._due = float("-inf")
        self.max_lag = 0.0
        # Pacing: line seconds received since the first frame; more than
        # ``max_audio_ahead`` beyond the wall clock is a flood.
        self._line_start: float | None = None
        self._line_seconds = 0.0
        self.flooded = False
        self._flood_reported = False
        self._bytes_per_second = 2 * settings.sample_rate
        queue_seconds = settings.max_lag + settings.max_audio_ahead + 1.0
        self._audio = _AudioQueue(int(queue_seconds * self._bytes_per_second),
                                  int(queue_seconds / MIN_FRAME_SECONDS))

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

    async def end_utterance(self) -> None:
        """End what the caller is saying now, as if they had paused: the
        recogniser's final result for it comes as the next :class:`Final`
        (``endpoint=False``, possibly without words)."""
        if self._stream is not None and self._stream.is_open:
            for result in await self._stream.end_utterance():
                self._emit(result)

    async def reset_recognition(self) -> None:
        """Forget the utterance in progress: what the caller says from now on is
        recognised on its own. Audio still waiting for the decoder is from
        before, so it goes too (a batch being decoded is decoded first: the
        stream runs its jobs in order)."""
        if self._stream is not None and self._stream.is_open:
            # A batch the decode loop has already taken is not in the queue: the turn
            # number tells it apart (not fed, or its results dropped).
            self._turn += 1
            self._audio.clear()
            await self._stream.reset()

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
        self._wake.set()
        with contextlib.suppress(ConnectionError, asyncio.TimeoutError):
            self._writer.write(hangup_frame())
            await asyncio.wait_for(self._writer.drain(), HANGUP_GRACE)   # a peer that does not read
        asyncio.get_running_loop().call_later(HANGUP_GRACE, self._close_transport)

    async def close(self, reason: str = "closed") -> None:
        """Close the connection (the call continues in the dialplan) and wait
        for the session to end. Closing a session that never connected ends it
        with ``never_connected``. ``shutdown`` drops unsent output at once."""
        if self.ended is not None:
            return
        self._owner_reason = self._owner_reason or (reason, "")
        if self._writer is None:
            self._finish(Ended("never_connected" if reason == "closed" else reason))
            return
        self._close_transport(abort=reason == "shutdown")
        await self._done.wait()

    @property
    def audio_queued(self) -> int:
        """Frames waiting for the decoder now."""
        return len(self._audio)

    @property
    def audio_queue_high_water(self) -> int:
        """The most frames that waited for the decoder at once."""
        return self._audio.high_water

    @property
    def audio_queue_limit(self) -> int:
        """The most frames that may wait for the decoder."""
        return self._audio.max_frames

    @property
    def audio_frames_dropped(self) -> int:
        """Frames that did not fit in the decoder's queue."""
        return self._audio.dropped

    # ----- the server's side ------------------------------------------------

    async def run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  decoder: FrameDecoder, frames: list[Frame], pool: RecognizerPool | None,
                  error: ProtocolError | None = None) -> None:
        """Serve the connection until it ends (called by the server with the
        frames read after the UUID frame, and the error that followed them, if any)."""
        self.attached = True
        self._writer = writer
        self.peer = str(writer.get_extra_info("peername"))
        self._connected.set()
        self._log("info", "audiosocket.connected", peer=self.peer)
        reason, detail = "internal_error", ""
        decoding: asyncio.Task | None = None
        try:
            await self._open_stream(pool)
            if self._stream is not None:
                decoding = asyncio.create_task(self._decode())
            reason, detail = await self._read(reader, decoder, frames, error)
        except asyncio.CancelledError:
            reason, detail = self._owner_reason or ("shutdown", "cancelled")
            raise
        except Exception as exc:  # a bug must end this call's session, not the server
            self._log("exception", "audiosocket.failed", error=repr(exc))
            detail = repr(exc)
        finally:
            # Nothing waiting is decoded any more: the caller is gone or the owner
            # let go. Only a decode already running in a worker finishes.
            self._audio.clear()
            try:
                if decoding is not None:
                    decoding.cancel()
                    await asyncio.wait({decoding})
                await self._end_stream(flush=reason not in OWNER_REASONS)
            finally:
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
                    error: ProtocolError | None) -> tuple[str, str]:
        while True:
            for frame in frames:
                end = self._on_frame(frame)
                if end is not None:
                    return end
            if self.flooded and not self._flood_reported:
                await self._report_flood()
            if error is not None:
                self._log("warning", "audiosocket.protocol_error", error=str(error))
                return "protocol_error", str(error)
            if self._owner_reason:
                return self._owner_reason
            if self.flooded:
                await self._hold_back()
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

    def _on_frame(self, frame: Frame) -> tuple[str, str] | None:
        now = asyncio.get_running_loop().time()
        if frame.kind is Kind.HANGUP:
            return "hangup_frame", ""
        if frame.kind is Kind.ERROR:
            self._log("warning", "audiosocket.error_frame", code=frame.error_code())
            return "error_frame", frame.error_code()
        seconds = len(frame.payload) / self._bytes_per_second if frame.kind is Kind.AUDIO else 0.0
        self._pace(max(seconds, MIN_FRAME_SECONDS), now)
        if frame.kind is Kind.AUDIO:
            self.audio_frames_in += 1
            self._due = max(self._due + seconds, now)
            stream = self._stream
            if frame.payload and not self.flooded and stream is not None and stream.is_open:
                queued = self._audio.put((frame.payload, now, self._due, self._turn))
                if not queued and self._audio.dropped == 1:
                    self._log("warning", "audiosocket.audio_dropped", queued=len(self._audio),
                              limit=self._audio.max_frames)
        elif frame.kind is Kind.DTMF:
            self._log("info", "audiosocket.dtmf", digit=frame.digit())
            self._emit(Dtmf(frame.digit(), now))
        elif frame.kind is Kind.UUID and frame.uuid() != self.uuid:
            self._log("warning", "audiosocket.second_uuid", other=str(frame.uuid()))
        return None

    def _pace(self, seconds: float, now: float) -> None:
        if self._line_start is None:
            self._line_start = now
        self._line_seconds += seconds
        if not self.flooded and self._ahead(now) > self._settings.max_audio_ahead:
            self.flooded = True
            self._audio.clear()

    def _ahead(self, now: float) -> float:
        """How far the line is ahead of the wall clock since its first frame (seconds)."""
        if self._line_start is None:
            return 0.0
        return self._line_seconds - (now - self._line_start)

    async def _report_flood(self) -> None:
        self._flood_reported = True
        now = asyncio.get_running_loop().time()
        self._log("warning", "audiosocket.flood", peer=self.peer, ahead_seconds=round(self._ahead(now), 2),
                  limit_seconds=self._settings.max_audio_ahead, audio_frames=self.audio_frames_in,
                  seconds_since_first_frame=round(now - (self._line_start or now), 2))
        await self._fail_stream("flood", f"audio arrives faster than real time "
                                         f"({self._ahead(now):.1f} s ahead after "
                                         f"{now - (self._line_start or now):.1f} s)")

    async def _hold_back(self) -> None:
        """After a flood, read no faster than real time (plus the allowance):
        the rest waits in the sender's socket, not in our memory."""
        delay = self._ahead(asyncio.get_running_loop().time()) - self._settings.max_audio_ahead
        if delay > 0 and not self._wake.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _fail_stream(self, reason: str, detail: str) -> None:
        stream = self._stream
        if stream is None or not stream.is_open:
            return
        self._audio.clear()
        failure = await stream.fail(reason, detail)
        if stream.failure is failure:          # not failed meanwhile for another reason
            self._emit(failure)

    async def _decode(self) -> None:
        loop = asyncio.get_running_loop()
        coalesce = int(MAX_COALESCE_SECONDS * self._bytes_per_second)
        while True:
            # One frame per job while decoding keeps up; when it lags, whatever
            # has queued up (up to a second) goes in one job. (Always gathering
            # 60-100 ms per job was measured too: no more calls per machine,
            # later results.)
            taken = await self._audio.take(coalesce)
            turn = self._turn
            batch = [item for item in taken if item[3] == turn]
            stream = self._stream
            if stream is None or not stream.is_open:
                self._audio.clear()
                continue
            if not batch or turn != self._turn:     # audio of a turn that has ended
                continue
            received_at, first_due, last_due = batch[0][1], batch[0][2], batch[-1][2]
            behind = loop.time() - first_due
            if behind > self._settings.max_lag:
                self._log("warning", "asr.stream_overloaded", behind_seconds=round(behind, 2))
                await self._fail_stream("overloaded", f"decoding {behind:.1f} s behind real time")
                continue
            results = await stream.feed(b"".join(item[0] for item in batch), received_at)
            self.audio_frames_decoded += len(batch)
            if turn != self._turn:
                # Reset while this batch was decoded: what it gave belongs to the ended
                # turn ("the first turn's words began the second turn's partials").
                results = [r for r in results if not isinstance(r, (Partial, Final))]
            for result in results:
                self._emit(result)
            self.max_lag = max(self.max_lag, loop.time() - last_due)

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

    def _close_transport(self, abort: bool = False) -> None:
        self._wake.set()
        if self._writer is None:
            return
        transport = self._writer.transport
        if not transport.is_closing():
            self._writer.close()
        # A peer that does not read would keep a graceful close (and our reads)
        # waiting for ever: drop what it did not take.
        if abort or transport.get_write_buffer_size() > 0:
            transport.abort()

    def _finish(self, ended: Ended) -> None:
        if self.ended is not None:
            return
        self.ended = ended
        level = "warning" if ended.reason in ("protocol_error", "error_frame", "internal_error") else "info"
        self._log(level, "audiosocket.ended", reason=ended.reason, detail=ended.detail or None,
                  audio_frames=self.audio_frames_in, decoded_frames=self.audio_frames_decoded,
                  dropped_frames=self._audio.dropped or None, flood=self.flooded or None)
        self._events.put_nowait(ended)
        self._done.set()

    def _log(self, level: str, event: str, **fields: object) -> None:
        with bound_call(self.call_id, audiosocket_uuid=str(self.uuid)):
            getattr(log, level)(event, **fields)
