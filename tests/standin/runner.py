"""Play a Script on a Connection: Sends, Expects and the final Close."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from .connection import Connection
from .steps import Close, Expect, Send
from .substitution import substitute_chunks


class ScriptRunner:
    """Plays one connection's script, step by step."""

    def __init__(self, conn: Connection, speed: float = 0.0,
                 on_close: Callable[[], Awaitable[None]] | None = None) -> None:
        self.conn = conn
        self.speed = speed
        self.on_close = on_close
        self._previous_t: float | None = None
        self._never = asyncio.Event()

    async def _pace(self, t: float) -> None:
        if self.speed > 0 and self._previous_t is not None and t > self._previous_t:
            await asyncio.sleep((t - self._previous_t) / self.speed)
        self._previous_t = t

    async def _hold_while_silent(self) -> None:
        if self.conn.silent:
            await self._never.wait()  # a hung Asterisk never writes again

    async def _wait_for(self, index: int) -> None:
        conn = self.conn
        while index not in conn.matched:
            conn.match_event.clear()
            if index in conn.matched:
                break
            await conn.match_event.wait()
        self._previous_t = conn.script[index].t

    async def _play_sends(self, first: int) -> int:
        """Play the run of consecutive Sends starting at ``first``; return the next index."""
        steps = self.conn.script.steps
        last = first
        while last < len(steps) and isinstance(steps[last], Send):
            last += 1
        chunks = substitute_chunks([s.data for s in steps[first:last]], self.conn.ids)
        for offset, data in enumerate(chunks):
            step = steps[first + offset]
            self.conn.position = first + offset
            await self._pace(step.t)
            await self._hold_while_silent()
            if self.conn.closed:
                raise ConnectionAbortedError
            await self.conn.write_script(data)
            if step.pause_after:
                await asyncio.sleep(step.pause_after)
        return last

    async def play(self) -> None:
        """Run the whole script; ``conn.done`` is set once every step has played."""
        conn = self.conn
        index = 0
        try:
            while index < len(conn.script):
                conn.position = index
                step = conn.script[index]
                if isinstance(step, Send):
                    index = await self._play_sends(index)
                    continue
                if isinstance(step, Expect):
                    await self._wait_for(index)
                elif isinstance(step, Close):
                    await self._pace(step.t)
                    await self._hold_while_silent()
                    if self.on_close is not None:
                        await self.on_close()
                    await conn.close()
                index += 1
        except ConnectionAbortedError:
            return  # closed under us: the script stays "stuck" at this step
        conn.position = len(conn.script)
        conn.done.set()
