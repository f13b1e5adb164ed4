"""The AudioSocket server: accepts Asterisk's connections (dialplan
``AudioSocket(${AS_UUID},host:9092)``), reads the UUID frame and hands the
connection to the :class:`CallSession` registered under that UUID.

The owner of a call (the voice menu) registers its UUID with :meth:`session`
*before* it asks Asterisk to connect. Only a connection for a UUID that a live
session is waiting for is served (and only then takes a recogniser); anything
else costs one short-lived socket:

* a UUID nobody registered (or whose session is over, or already has its
  connection) is closed as soon as its UUID frame is read, logged with the
  source address (``audiosocket.unknown_uuid`` / ``audiosocket.duplicate``);
* a connection that does not send a UUID frame within ``first_frame_timeout``,
  or sends something else first, is closed (``audiosocket.rejected``);
* at most ``max_pending_per_address`` connections per source address may be
  waiting for their UUID frame (counted once they have waited
  ``PENDING_GRACE``: Asterisk sends the frame as it connects, and a burst of
  its connections accepted together after a busy moment must not count);
  a connection beyond that is closed at once, or when it has waited
  ``PENDING_GRACE`` (``audiosocket.pending_limit``).

These warnings are logged at most ``LOG_BURST`` times a second per source
address and kind; the next line says how many were left out (``suppressed``).
:attr:`refused` counts them all.

:meth:`close` ends within a few seconds whatever the peers do: unsent output is
dropped, and only the decodes already running in worker threads are waited for.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from typing import Sequence

from asr.audiosocket.framing import FrameDecoder, Kind, ProtocolError
from asr.audiosocket.session import CallSession
from asr.engine.pool import RecognizerPool
from hotline.settings import AsrSettings
from hotline.logs import get_logger

log = get_logger(__name__)

PENDING_GRACE = 0.25         # seconds a new connection may take for its UUID frame before it counts
SHUTDOWN_GRACE = 3.0         # seconds close() waits for sessions to end before cancelling them
LOG_INTERVAL = 1.0           # per this many seconds, at most LOG_BURST warnings of one kind
LOG_BURST = 5                # about one source address


class _OverLimit(Exception):
    """The source address already has its bound of connections waiting for a UUID frame."""

    def __init__(self, waiting: int):
        super().__init__(f"{waiting} connections waiting")
        self.waiting = waiting


class AudioSocketServer:
    """Listens on ``audiosocket_host:audiosocket_port``; one session per call UUID.
    ``pool`` may be None (no model): calls then get keys and prompts only."""

    def __init__(self, settings: AsrSettings, pool: RecognizerPool | None):
        self.settings = settings
        self.pool = pool
        self._sessions: dict[uuid.UUID, CallSession] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()           # the server's own helpers
        self._connections: set[asyncio.Task] = set()     # one per accepted connection
        self._unidentified: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._waiting: dict[str, int] = {}   # source address -> connections past PENDING_GRACE without a UUID
        self._closing = False
        # (kind, address) -> (start of the current interval, lines logged in it, lines left out)
        self._warnings: dict[tuple[str, str], tuple[float, int, int]] = {}
        # Connections turned away, by reason: unknown_uuid, duplicate, pending_limit,
        # rejected (no or bad UUID frame), shutdown.
        self.refused: collections.Counter[str] = collections.Counter()

    async def start(self) -> None:
        """Start listening."""
        self._server = await asyncio.start_server(
            self._accept, self.settings.audiosocket_host, self.settings.audiosocket_port)
        log.info("audiosocket.listening", host=self.settings.audiosocket_host, port=self.port)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0 in tests)."""
        assert self._server is not None and self._server.sockets
        return self._server.sockets[0].getsockname()[1]

    def session(self, call_uuid: uuid.UUID | str, *, call_id: str | None = None,
                grammar: Sequence[str] | None = None) -> CallSession:
        """Register for this UUID, before Asterisk is asked to connect: the
        session that the connection with this UUID will be handed to. Asking
        again while the session lives returns the same one. ``call_id`` (the
        call's Linkedid) is put on every log line; ``grammar`` restricts
        recognition from the first frame."""
        call_uuid = call_uuid if isinstance(call_uuid, uuid.UUID) else uuid.UUID(str(call_uuid))
        session = self._sessions.get(call_uuid)
        if session is not None and session.ended is None:
            if call_id:
                session.call_id = call_id
            if grammar is not None and session.grammar is None and not session.attached:
                session.grammar = list(grammar)
            return session
        session = CallSession(call_uuid, self.settings, call_id=call_id, grammar=grammar)
        self._sessions[call_uuid] = session
        self._watch(session)
        return session

    def sessions(self) -> list[CallSession]:
        """Live sessions (connected, or registered and waiting for their connection)."""
        return list(self._sessions.values())

    @property
    def pending(self) -> int:
        """Connections accepted that have not sent their UUID frame yet."""
        return len(self._unidentified)

    @property
    def pending_counted(self) -> int:
        """Of those, the ones counted against their address's bound (waiting past ``PENDING_GRACE``)."""
        return sum(self._waiting.values())

    async def close(self) -> None:
        """Stop listening and end every session (``shutdown``) and connection.
        Returns within about ``SHUTDOWN_GRACE`` seconds whatever the peers do."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in list(self._unidentified):
            task.cancel()
        closing = [asyncio.create_task(s.close("shutdown")) for s in list(self._sessions.values())]
        if closing:
            _, late = await asyncio.wait(closing, timeout=SHUTDOWN_GRACE)
            if late:
                log.warning("audiosocket.shutdown_late", sessions=len(late))
                for task in late:
                    task.cancel()
        for task in list(self._connections):
            task.cancel()
        helpers = list(self._tasks)
        for task in helpers:
            task.cancel()
        leftover = [*self._connections, *helpers, *closing]
        if leftover:
            await asyncio.wait(leftover, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()

    def _watch(self, session: CallSession) -> None:
        async def forget_when_done() -> None:
            await session.wait_closed()
            if self._sessions.get(session.uuid) is session:
                del self._sessions[session.uuid]
        self._spawn(forget_when_done())

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer, task)
        except asyncio.CancelledError:
            pass        # close() ended it; asyncio's stream server would log a cancelled task as an error
        finally:
            self._connections.discard(task)
            if not writer.transport.is_closing():
                writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     task: asyncio.Task) -> None:
        peer = writer.get_extra_info("peername")
        address = peer[0] if isinstance(peer, tuple) else str(peer)
        if self._closing:
            return self._refuse(writer, "shutdown", peer, "audiosocket.rejected", reason="shutting down")
        if self._waiting.get(address, 0) >= self.settings.max_pending_per_address:
            return self._refuse(writer, "pending_limit", peer, "audiosocket.pending_limit",
                                waiting=self._waiting[address], limit=self.settings.max_pending_per_address)
        self._unidentified[task] = writer
        decoder = FrameDecoder(self.settings.max_frame_payload)
        error: ProtocolError | None = None
        try:
            frames = await self._identify(reader, decoder, address)
        except ProtocolError as exc:
            if not (exc.frames and exc.frames[0].kind is Kind.UUID):
                return self._refuse(writer, "rejected", peer, "audiosocket.rejected", reason=str(exc))
            frames, error = exc.frames, exc      # the call may be known: its owner is told
        except _OverLimit as exc:
            return self._refuse(writer, "pending_limit", peer, "audiosocket.pending_limit",
                                waiting=exc.waiting, limit=self.settings.max_pending_per_address)
        except (asyncio.TimeoutError, ConnectionError, EOFError) as exc:
            reason = "no frame in time" if isinstance(exc, asyncio.TimeoutError) else str(exc) or repr(exc)
            return self._refuse(writer, "rejected", peer, "audiosocket.rejected", reason=reason)
        finally:
            self._unidentified.pop(task, None)
        call_uuid = frames[0].uuid()
        session = self._sessions.get(call_uuid)
        if session is None or session.ended is not None or self._closing:
            return self._refuse(writer, "unknown_uuid", peer, "audiosocket.unknown_uuid",
                                audiosocket_uuid=str(call_uuid))
        if session.attached:
            return self._refuse(writer, "duplicate", peer, "audiosocket.duplicate",
                                audiosocket_uuid=str(call_uuid))
        await session.run(reader, writer, decoder, frames[1:], self.pool, error)

    async def _identify(self, reader: asyncio.StreamReader, decoder: FrameDecoder, address: str) -> list:
        """The frames of the first read(s), the UUID frame first. Past
        ``PENDING_GRACE`` the connection counts against its address's bound
        (:class:`_OverLimit` when the bound is reached)."""
        timeout = self.settings.first_frame_timeout
        first = asyncio.ensure_future(self._first_frames(reader, decoder))
        counted = False
        try:
            done, _ = await asyncio.wait({first}, timeout=min(PENDING_GRACE, timeout))
            if not done:
                waiting = self._waiting.get(address, 0)
                if waiting >= self.settings.max_pending_per_address:
                    raise _OverLimit(waiting)
                self._waiting[address] = waiting + 1
                counted = True
                await asyncio.wait_for(first, max(0.0, timeout - PENDING_GRACE))
            return first.result()
        finally:
            if not first.done():
                first.cancel()
            if counted:
                left = self._waiting.get(address, 1) - 1
                if left > 0:
                    self._waiting[address] = left
                else:
                    self._waiting.pop(address, None)

    def _refuse(self, writer: asyncio.StreamWriter, kind: str, peer: object, event: str,
                **fields: object) -> None:
        """Close the connection at once and log it (rate-limited per address and kind)."""
        writer.transport.abort()
        self.refused[kind] += 1
        address = peer[0] if isinstance(peer, tuple) else str(peer)
        now = asyncio.get_running_loop().time()
        key = (kind, address)
        started, logged, suppressed = self._warnings.get(key, (float("-inf"), 0, 0))
        if now - started >= LOG_INTERVAL:
            started, logged = now, 0
        if logged >= LOG_BURST:
            self._warnings[key] = (started, logged, suppressed + 1)
            return
        self._warnings[key] = (started, logged + 1, 0)
        if len(self._warnings) > 10_000:                # many addresses: forget the quiet ones
            self._warnings = {k: v for k, v in self._warnings.items() if now - v[0] < LOG_INTERVAL}
        log.warning(event, peer=str(peer), suppressed=suppressed or None, **fields)

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

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
