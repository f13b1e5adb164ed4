"""A scripted Asterisk AMI server on 127.0.0.1 that replays real captures."""

from __future__ import annotations

import asyncio
import time

from .connection import Connection
from .emulator import Emulator
from .framing import format_message
from .runner import ScriptRunner
from .script import Script
from .steps import Send

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


class ScriptNotDone(AssertionError):
    """A script did not play to its end in time."""


class AmiStandIn:
    """Plays ``scripts[i]`` on the i-th accepted connection; later ones get an idle Asterisk.

    ``speed`` > 0 paces the Sends by the recorded timestamps divided by
    ``speed`` (0 = as fast as possible). ``refuse_between`` > 0 makes a
    script's Close also close the listening socket for that many seconds,
    so reconnects in between are refused (as during ``core restart now``).
    """

    def __init__(self, scripts: list[Script], *, speed: float = 0.0, emulator: Emulator | None = None,
                 refuse_between: float = 0.0, idle_after_scripts: bool = True,
                 host: str = "127.0.0.1") -> None:
        self.scripts = list(scripts)
        self.speed = speed
        self.emulator = emulator if emulator is not None else Emulator()
        self.refuse_between = refuse_between
        self.idle_after_scripts = idle_after_scripts
        self.host = host
        self.port = 0
        self.received: list[list[dict]] = []
        self.received_raw: list[list[str]] = []      # the same, as sent (repeated headers kept)
        self.unexpected: list[dict] = []
        self._conns: list[Connection] = []
        self._tasks: set[asyncio.Task] = set()
        self._server: asyncio.AbstractServer | None = None
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> "AmiStandIn":
        """Bind 127.0.0.1 (port 0 the first time) and start accepting."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening, reset every connection and cancel the tasks."""
        self._stopped = True
        if self._server is not None:
            self._server.close()
        for conn in self._conns:
            if not conn.writer.transport.is_closing():
                conn.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> "AmiStandIn":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _refuse_connections(self) -> None:
        """Close the listening socket now; listen again on the same port later."""
        if self._server is not None:
            self._server.close()
            self._server = None

        async def relisten() -> None:
            await asyncio.sleep(self.refuse_between)
            if not self._stopped:
                await self.start()

        self._spawn(relisten())

    # -- connections -----------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = len(self._conns)
        idle = index >= len(self.scripts)
        script = self.scripts[index] if not idle else (
            Script([Send(BANNER)]) if self.idle_after_scripts else None)
        conn = Connection(index, reader, writer, script or Script(), self.emulator, self.unexpected,
                          logged_in=False if idle else None)
        self._conns.append(conn)
        self.received.append(conn.received)
        self.received_raw.append(conn.received_raw)
        if script is None:
            await conn.close()
            return
        on_close = self._refuse_connections if self.refuse_between > 0 else None
        self._spawn(conn.read_loop())
        self._spawn(ScriptRunner(conn, self.speed, on_close).play())

    def _conn(self, conn_index: int) -> Connection:
        if not self._conns:
            raise LookupError("no connection accepted yet")
        return self._conns[conn_index]

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted so far."""
        return len(self._conns)

    def position(self, conn_index: int = -1) -> str:
        """Where that connection's script is, for debugging."""
        conn = self._conn(conn_index)
        if conn.done.is_set():
            return f"connection {conn.index}: done ({len(conn.script)} steps)"
        if conn.position >= len(conn.script):
            return f"connection {conn.index}: no script (closed at once)"
        step = conn.script[conn.position]
        notes = [n for n, on in (("client closed", conn.client_eof), ("socket closed", conn.closed),
                                 ("silent", conn.silent)) if on]
        suffix = f" [{', '.join(notes)}]" if notes else ""
        return f"connection {conn.index}: step {conn.position}/{len(conn.script)} {step!r}{suffix}"

    async def wait_script_done(self, conn_index: int | None = None, timeout: float = 5) -> None:
        """Wait until that connection's script (default: every script) has played to the end."""
        targets = range(len(self.scripts)) if conn_index is None else [conn_index]
        deadline = time.monotonic() + timeout
        for target in targets:
            while not (target < len(self._conns) and self._conns[target].done.is_set()):
                if time.monotonic() >= deadline:
                    raise ScriptNotDone(self._stuck_report(target, timeout))
                await asyncio.sleep(0.005)

    def _stuck_report(self, target: int, timeout: float) -> str:
        if target >= len(self._conns):
            return (f"script {target} never started within {timeout} s: "
                    f"{len(self._conns)} connection(s) accepted so far")
        conn = self._conns[target]
        last = "".join(format_message(list(m.items())) for m in conn.received[-3:]) or "(none)\r\n"
        return (f"script not done within {timeout} s; stuck at {self.position(target)}\n"
                f"last client messages:\n{last}")

    # -- fault injection ---------------------------------------------------------
    async def inject(self, data: bytes, conn_index: int = -1) -> None:
        """Write raw bytes to a live connection now."""
        await self._conn(conn_index).inject(data)

    async def drop(self, conn_index: int = -1) -> None:
        """Close that connection abruptly (TCP reset)."""
        self._conn(conn_index).abort()

    def go_silent(self, conn_index: int = -1) -> None:
        """From now on that connection ignores the client and writes nothing; the socket stays open."""
        self._conn(conn_index).silent = True
