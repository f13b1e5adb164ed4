"""Follow what the stand-in has sent, to know each channel's AGI state."""

from __future__ import annotations

import asyncio

from .framing import header_items, message_spans

Items = list[tuple[str, str]]


def channel_block(items: Items) -> Items | None:
    """The ``Channel`` ... ``Linkedid`` header lines of an event, or None."""
    keys = [k for k, _ in items]
    if "Channel" not in keys:
        return None
    start = keys.index("Channel")
    if "Linkedid" not in keys[start:]:
        return None
    end = keys.index("Linkedid", start)
    return items[start:end + 1]


class OutStream:
    """Splits the bytes written to the client into complete messages."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Items]:
        """Add written bytes; return the messages they completed, parsed."""
        self._buffer += data
        spans, rest = message_spans(self._buffer)
        messages = [header_items(self._buffer[s:e]) for s, e in spans]
        self._buffer = self._buffer[rest:]
        return messages

    @property
    def mid_message(self) -> bool:
        """True while the last write ended inside a message."""
        return bool(self._buffer)


class ChannelTracker:
    """Channels seen in the events sent on one connection, and their AGI state."""

    def __init__(self, agi_underneath: frozenset[str] = frozenset()) -> None:
        # Channels a capture says wait in AsyncAGI although CoreShowChannels names
        # an application the AGI EXEC'd (capture E6: no new snapshot when it returns).
        self.agi_underneath = agi_underneath
        self.agi_blocks: dict[str, Items] = {}
        self.agi_ended: set[str] = set()
        self.hungup: set[str] = set()
        self.seen: set[str] = set()
        # An AGI command the script answers (e.g. the capture's EXEC Queue): res_agi runs a
        # channel's commands one at a time, so later ones wait until its AsyncAGIExec.
        self._script_command: dict[str, str] = {}     # channel -> the client's CommandID
        self._script_done: dict[str, asyncio.Event] = {}

    def observe(self, items: Items) -> None:
        """Update the state from one message sent to the client."""
        headers = dict(items)
        event, channel = headers.get("Event"), headers.get("Channel")
        if not event or not channel:
            return
        if event == "Newchannel":
            self.hungup.discard(channel)
        self.seen.add(channel)
        if event == "CoreShowChannel":
            # A channel listed in AGI(agi:async) accepts AGI commands, as one that
            # started AsyncAGI on this connection does.
            in_agi = headers.get("Application") == "AGI" and "agi:async" in headers.get("ApplicationData", "")
            block = channel_block(items)
            if block and (in_agi or channel in self.agi_underneath) and channel not in self.agi_blocks:
                self.agi_blocks[channel] = block
        elif event == "AsyncAGIStart":
            block = channel_block(items)
            if block:
                self.agi_blocks[channel] = block
                self.agi_ended.discard(channel)
        elif event == "AsyncAGIEnd":
            self.agi_ended.add(channel)
            self._script_finished(channel)
        elif event == "AsyncAGIExec" and self._script_command.get(channel) == headers.get("CommandId"):
            self._script_finished(channel)
        elif event == "Hangup":
            self.hungup.add(channel)
            self._script_finished(channel)

    def script_runs(self, channel: str, command_id: str) -> None:
        """The script took an AGI command for ``channel`` (its Expect matched)."""
        self._script_command[channel] = command_id
        self._script_done.setdefault(channel, asyncio.Event()).clear()

    def _script_finished(self, channel: str) -> None:
        self._script_command.pop(channel, None)
        done = self._script_done.get(channel)
        if done is not None:
            done.set()

    def script_busy(self, channel: str) -> bool:
        return channel in self._script_command

    async def script_idle(self, channel: str) -> None:
        done = self._script_done.get(channel)
        if done is not None:
            await done.wait()

    def end_agi(self, channel: str) -> None:
        """Mark the channel as having left AsyncAGI (ASYNCAGI BREAK)."""
        self.agi_ended.add(channel)

    def hang_up(self, channel: str) -> None:
        """Mark the channel as gone (an emulated caller hung up)."""
        self.hungup.add(channel)

    def state(self, channel: str) -> str:
        """``"agi"``, ``"agi-ended"``, ``"up"`` (not in AGI) or ``"unknown"``."""
        if channel in self.hungup or channel not in self.seen:
            return "unknown"
        if channel in self.agi_blocks:
            return "agi-ended" if channel in self.agi_ended else "agi"
        return "up"
