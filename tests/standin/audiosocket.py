"""Asterisk's side of ``AudioSocket()`` for the emulated caller, used when the
menu runs ``EXEC AudioSocket <uuid>,<host:port>`` in its AsyncAGI session.

Faithful to the captures (tests/fixtures/asterisk/audiosocket-summary.txt) and to
the Asterisk 22 log of the same calls:
* Asterisk connects, sends the UUID frame (``01 00 10`` + 16 raw bytes), then a
  320-byte signed-linear frame (kind ``0x10``) every 20 ms for as long as the
  application runs, and a DTMF frame (kind ``0x03``, one ASCII byte) when a key
  is released;
* the server's hangup frame (``00 00 00``) or closing the socket ends the
  application with result 0: "AudioSocket returned, channel still up";
* the caller hanging up closes the socket from Asterisk's side and the
  application fails: the AGI EXEC answers ``200 result=-1``.

Written from the byte layout, not with the project's own framing code, so a
framing bug on our side cannot hide behind the same bug here.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Union

FRAME = 320                       # 20 ms of 8 kHz 16-bit mono
SILENT_FRAME = bytes(FRAME)
PROMPT_GAP = 0.25                 # no audio from the server this long: its prompt has ended


@dataclass(frozen=True)
class Say:
    """The caller speaks ``pcm`` (8 kHz s16le), after the prompt has ended
    (``over_prompt`` False) or at once, talking over it."""

    pcm: bytes
    over_prompt: bool = False


@dataclass(frozen=True)
class Press:
    """The caller presses a key, after the prompt ends (or over it)."""

    digit: str
    over_prompt: bool = False


@dataclass(frozen=True)
class Quiet:
    """The caller says nothing for ``seconds`` (line silence keeps flowing)."""

    seconds: float


@dataclass(frozen=True)
class HangUp:
    """The caller hangs up (Asterisk closes the socket)."""


@dataclass(frozen=True)
class Replay:
    """The frames Asterisk sent in a captured call (``frames``: kind, payload),
    sent at once, audio on the 20 ms clock, without waiting for prompts."""

    frames: tuple[tuple[int, bytes], ...]

    @classmethod
    def capture(cls, path: Path) -> "Replay":
        """A ``<name>.as1.in.bin`` capture without its UUID frame: the connection
        opens with the UUID of the call at hand, as Asterisk's would."""
        data, frames = path.read_bytes(), []
        while data:
            kind, length = data[0], struct.unpack(">H", data[1:3])[0]
            frames.append((kind, data[3:3 + length]))
            data = data[3 + length:]
        if not frames or frames[0][0] != 0x01:
            raise ValueError(f"{path} does not start with a UUID frame")
        return cls(tuple(frames[1:]))


Turn = Union[Say, Press, Quiet, HangUp, Replay]


class AudioSocketCaller:
    """Plays ``turns`` into each AudioSocket connection the menu asks for.

    ``speed`` > 1 sends the line faster than real time (the server accepts
    audio that arrives early). ``refuse`` makes the EXEC fail as when Asterisk
    cannot connect (``200 result=-1`` without any connection)."""

    def __init__(self, turns: Iterable[Turn] = (), *, speed: float = 1.0, max_seconds: float = 60.0,
                 refuse: bool = False):
        self.turns = list(turns)
        self.speed = speed
        self.max_seconds = max_seconds
        self.refuse = refuse
        self.prompt_audio = bytearray()     # what the server played to the caller
        self.prompt_bytes_at_turn: list[int] = []
        self.ended_by: list[str] = []       # per connection: hangup_frame | server_closed | caller

    async def run(self, args: str) -> tuple[str, str | None]:
        """Run one ``AudioSocket(<uuid>,<host:port>)``. Returns the AGI result line
        and, when the application failed, the AGISTATUS the AsyncAGI session ends
        with (res_agi ends it after a failed command: FAILURE, or HANGUP when
        the caller is gone)."""
        call_uuid, _, address = args.partition(",")
        host, _, port = address.rpartition(":")
        if self.refuse:
            self.ended_by.append("refused")
            return "200 result=-1", "FAILURE"
        try:
            reader, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            self.ended_by.append("unreachable")
            return "200 result=-1", "FAILURE"   # "Failed to connect to AudioSocket server"
        connection = _Connection(self, reader, writer)
        writer.write(b"\x01\x00\x10" + uuid.UUID(call_uuid).bytes)
        await writer.drain()
        ended = await connection.run()
        self.ended_by.append(ended)
        return ("200 result=-1", "HANGUP") if ended == "caller" else ("200 result=0", None)


class _Connection:
    def __init__(self, caller: AudioSocketCaller, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.caller = caller
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.last_prompt_audio = float("-inf")
        self.prompt_started = False
        self.server_done = asyncio.Event()
        self.end_reason = "server_closed"

    async def run(self) -> str:
        reading = asyncio.create_task(self._read())
        try:
            ended = await self._talk()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            if not self.writer.is_closing():
                self.writer.close()
        return ended

    async def _read(self) -> None:
        buffer = b""
        try:
            while data := await self.reader.read(65536):
                buffer += data
                while len(buffer) >= 3:
                    kind, length = buffer[0], struct.unpack(">H", buffer[1:3])[0]
                    if len(buffer) < 3 + length:
                        break
                    payload, buffer = buffer[3:3 + length], buffer[3 + length:]
                    if kind == 0x00:
                        self.end_reason = "hangup_frame"
                        self.server_done.set()
                        return
                    if kind == 0x10:
                        self.caller.prompt_audio += payload
                        self.prompt_started = True
                        self.last_prompt_audio = self.loop.time()
        except ConnectionError:
            pass
        self.server_done.set()

    async def _frame(self, kind: int, payload: bytes) -> bool:
        """Send one frame on the 20 ms clock; False once the server is done."""
        if self.server_done.is_set():
            return False
        try:
            self.writer.write(bytes([kind]) + struct.pack(">H", len(payload)) + payload)
            await self.writer.drain()
        except ConnectionError:
            self.server_done.set()
            return False
        if kind == 0x10:
            self._sent += 1
            delay = self._start + self._sent * 0.02 / self.caller.speed - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        return True

    def _prompt_over(self) -> bool:
        gap = PROMPT_GAP / self.caller.speed
        return self.prompt_started and self.loop.time() - self.last_prompt_audio > gap

    async def _talk(self) -> str:
        self._start, self._sent = self.loop.time(), 0
        deadline = self._start + self.caller.max_seconds / self.caller.speed
        while self.caller.turns:
            turn = self.caller.turns[0]
            if isinstance(turn, (Say, Press)) and not turn.over_prompt:
                while not self._prompt_over():           # listen to the prompt
                    if self.loop.time() > deadline or not await self._frame(0x10, SILENT_FRAME):
                        return self._end()
            self.caller.turns.pop(0)
            self.caller.prompt_bytes_at_turn.append(len(self.caller.prompt_audio))
            if isinstance(turn, HangUp):
                return "caller"
            if isinstance(turn, Replay):
                for kind, payload in turn.frames:
                    if not await self._frame(kind, payload):
                        return self._end()
                continue
            if isinstance(turn, Press):
                if not await self._frame(0x03, turn.digit.encode("ascii")):
                    return self._end()
                self.prompt_started = False              # the next prompt is an answer to this
                continue
            pcm = turn.pcm if isinstance(turn, Say) else bytes(int(turn.seconds * 8000) * 2)
            for start in range(0, len(pcm), FRAME):
                if not await self._frame(0x10, pcm[start:start + FRAME].ljust(FRAME, b"\0")):
                    return self._end()
            self.prompt_started = False
        while self.loop.time() < deadline:               # silence until the server lets go
            if not await self._frame(0x10, SILENT_FRAME):
                return self._end()
        return "caller"                                  # gave up waiting: hangs up

    def _end(self) -> str:
        return self.end_reason if self.server_done.is_set() else "caller"
