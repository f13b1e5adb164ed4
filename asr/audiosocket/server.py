"""The AudioSocket server: accepts Asterisk's connections (dialplan
``AudioSocket(${AS_UUID},host:9092)``), reads the UUID frame and hands the
connection to the :class:`CallSession` registered under that UUID.

The owner of a call (the voice menu) registers by UUID with :meth:`session`,
before or after the connection arrives; a connection nobody claims within
``claim_timeout`` is closed, and the call goes on in the dialplan.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Sequence

from asr.audiosocket.framing import FrameDecoder, Kind, ProtocolError
from asr.audiosocket.session import CallSession
from asr.engine.pool import RecognizerPool
from hotline.settings import AsrSettings
from hotline.logs import get_logger

log = get_logger(__name__)


class AudioSocketServer:
    """Listens on ``audiosocket_host:audiosocket_port``; one session per call UUID.
    ``pool`` may be None (no model): calls then get keys and prompts only."""

    def __init__(self, settings: AsrSettings, pool: RecognizerPool | None):
        self.settings = settings
        self.pool = pool
        self._sessions: dict[uuid.UUID, CallSession] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(
            self._accept, self.settings.audiosocket_host, self.settings.audiosocket_port)
        log.info("asr.audiosocket_listening", host=self.settings.audiosocket_host, port=self.port)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0 in tests)."""
        assert self._server is not None and self._server.sockets
        return self._server.sockets[0].getsockname()[1]

    def session(self, call_uuid: uuid.UUID | str, *, call_id: str | None = None,
                grammar: Sequence[str] | None = None) -> CallSession:
        """The session for this UUID, created if the connection has not arrived
        yet; registering claims it. ``call_id`` (the call's Linkedid) is put on
        every log line; ``grammar`` restricts recognition from the first frame."""
        call_uuid = call_uuid if isinstance(call_uuid, uuid.UUID) else uuid.UUID(str(call_uuid))
        session = self._sessions.get(call_uuid)
        if session is None or session.ended is not None and session.claimed:
            session = CallSession(call_uuid, self.settings, call_id=call_id, grammar=grammar)
            self._sessions[call_uuid] = session
            self._watch(session)
        else:
            if call_id:
                session.call_id = call_id
            if grammar is not None and session.grammar is None and not session.connected:
                session.grammar = list(grammar)
        session.claimed = True
        if session.ended is not None:
            self._sessions.pop(call_uuid, None)
        return session

    def sessions(self) -> list[CallSession]:
        """Sessions known now (connected, waiting for a connection or unclaimed)."""
        return list(self._sessions.values())

    async def close(self) -> None:
        """Stop listening and end every session (``shutdown``)."""
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions.values()):
            await session.close("shutdown")
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._server is not None:
            await self._server.wait_closed()

    def _watch(self, session: CallSession) -> None:
        async def forget_when_done() -> None:
            await session.wait_closed()
            if session.claimed and self._sessions.get(session.uuid) is session:
                del self._sessions[session.uuid]
        self._spawn(forget_when_done())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        decoder = FrameDecoder(self.settings.max_frame_payload)
        error: ProtocolError | None = None
        try:
            frames = await asyncio.wait_for(self._first_frames(reader, decoder),
                                            self.settings.first_frame_timeout)
        except ProtocolError as exc:
            if exc.frames and exc.frames[0].kind is Kind.UUID:
                frames, error = exc.frames, exc      # the call is known: its owner is told
            else:
                return self._reject(writer, peer, str(exc))
        except (asyncio.TimeoutError, ConnectionError, EOFError) as exc:
            reason = "no frame in time" if isinstance(exc, asyncio.TimeoutError) else str(exc) or repr(exc)
            return self._reject(writer, peer, reason)
        call_uuid = frames[0].uuid()
        session = self._sessions.get(call_uuid)
        if session is not None and session.attached and session.ended is None:
            log.warning("asr.audiosocket_duplicate", peer=str(peer), audiosocket_uuid=str(call_uuid))
            writer.close()
            return
        if session is None or session.attached:
            session = CallSession(call_uuid, self.settings)
            self._sessions[call_uuid] = session
            self._watch(session)
        if not session.claimed:
            self._spawn(self._expire_unclaimed(session))
        await session.run(reader, writer, decoder, frames[1:], self.pool, error)

    @staticmethod
    def _reject(writer: asyncio.StreamWriter, peer: object, reason: str) -> None:
        log.warning("asr.audiosocket_rejected", peer=str(peer), reason=reason)
        writer.close()

    async def _first_frames(self, reader: asyncio.StreamReader, decoder: FrameDecoder) -> list:
        frames: list = []
        while not frames:
            data = await reader.read(65536)
            if not data:
                raise EOFError("closed before the UUID frame")
            frames = decoder.feed(data)
        if frames[0].kind is not Kind.UUID:
            raise ProtocolError(f"first frame is kind 0x{frames[0].kind:02x}, not the UUID frame")
        return frames

    async def _expire_unclaimed(self, session: CallSession) -> None:
        await asyncio.sleep(self.settings.claim_timeout)
        if session.claimed:
            return
        if session.ended is None:
            await session.close("unclaimed")
        if self._sessions.get(session.uuid) is session:
            del self._sessions[session.uuid]

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
