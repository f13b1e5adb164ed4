"""One accepted TCP connection: the client reader, writes and per-connection state."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import TYPE_CHECKING

from .channels import ChannelTracker, OutStream
from .framing import ClientMessageSplitter, get_header, parse_message
from .script import Script
from .steps import Expect
from .substitution import IdTable

if TYPE_CHECKING:
    from .emulator import Emulator

# How long an emulated reply waits for the script to finish a message it
# left half-written (Asterisk never interleaves two messages).
BOUNDARY_WAIT = 2.0


class Connection:
    """State of one client connection to the stand-in."""

    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 script: Script, emulator: "Emulator", unexpected: list,
                 logged_in: bool | None = None) -> None:
        self.index = index
        self.reader = reader
        self.writer = writer
        self.script = script
        self.emulator = emulator
        self.unexpected = unexpected
        self.received: list[dict] = []
        self.received_raw: list[str] = []
        self.ids = IdTable()
        self.channels = ChannelTracker(emulator.agi_underneath)
        self.logged_in = (not script.has_login()) if logged_in is None else logged_in
        self.position = 0
        self.matched: dict[int, dict] = {}
        self.match_event = asyncio.Event()
        self.done = asyncio.Event()
        self.closed = False
        self.client_eof = False
        self.silent = False
        self.lock = asyncio.Lock()
        self._script_out = OutStream()
        self._inject_out = OutStream()
        self._boundary = asyncio.Event()
        self._boundary.set()

    # -- writing -------------------------------------------------------------
    async def _write(self, data: bytes) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(data)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.closed = True

    async def write_script(self, data: bytes) -> None:
        """Write one scripted chunk (one write + drain) and follow its messages."""
        async with self.lock:
            await self._write(data)
            for items in self._script_out.feed(data):
                self.channels.observe(items)
            if self._script_out.mid_message:
                self._boundary.clear()
            else:
                self._boundary.set()

    async def send(self, data: str | bytes) -> None:
        """Write an emulated reply, never inside a half-written scripted message."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self.silent:
            return
        try:
            await asyncio.wait_for(self._boundary.wait(), BOUNDARY_WAIT)
        except asyncio.TimeoutError:
            pass
        async with self.lock:
            if not self.silent:
                await self._write(data)

    async def inject(self, data: bytes) -> None:
        """Write raw bytes now (test-driven), outside the script."""
        async with self.lock:
            await self._write(data)
            for items in self._inject_out.feed(data):
                self.channels.observe(items)

    async def close(self) -> None:
        """Close the socket cleanly (the client sees EOF)."""
        if self.closed:
            return
        self.closed = True
        async with self.lock:
            try:
                self.writer.close()
            except (ConnectionError, OSError):
                pass

    def abort(self) -> None:
        """Close the socket abruptly with a TCP reset."""
        self.closed = True
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.writer.transport.abort()

    # -- reading -------------------------------------------------------------
    def pending_expect(self) -> int | None:
        """Index of the next Expect the script still waits for (looking past Sends)."""
        for index in range(self.position, len(self.script)):
            if isinstance(self.script[index], Expect) and index not in self.matched:
                return index
        return None

    async def read_loop(self) -> None:
        """Read client messages until EOF; route each to the script or the emulator."""
        splitter = ClientMessageSplitter()
        while True:
            try:
                data = await self.reader.read(65536)
            except (ConnectionError, OSError):
                break
            if not data:
                break
            for raw in splitter.feed(data):
                if raw.strip():
                    await self._dispatch(raw.decode("utf-8", errors="replace") + "\r\n\r\n")
        self.client_eof = True
        self.match_event.set()

    async def _dispatch(self, raw: str) -> None:
        message = parse_message(raw)
        self.received.append(message)
        self.received_raw.append(raw)
        if self.silent:
            return
        index = self.pending_expect()
        if index is not None and self.script[index].matches(message):
            expect = self.script[index]
            self.ids.learn(expect.message, message)
            if expect.action.lower() == "login":
                self.logged_in = True
            elif expect.action.lower() == "agi":
                self.channels.script_runs(get_header(message, "Channel"), get_header(message, "CommandID"))
            self.matched[index] = message
            self.match_event.set()
            return
        if not await self.emulator.handle(self, message):
            self.unexpected.append(message)
            await self.send(self.emulator.unknown_action(message))
