"""The AMI byte stream → messages, without panoramisk 1.4's silent losses.

panoramisk decodes every TCP read on its own with ``errors="ignore"``: a UTF-8
character split across two reads (a caller name such as 王小明) is dropped
without a word. Here one incremental decoder spans the whole connection, invalid
bytes are logged with their hex, garbage frames are logged instead of vanishing,
and a frame truncated by a lost message boundary is split so the complete message
behind it is still delivered.
"""

from __future__ import annotations

import codecs
import re

from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from hotline.logs import get_logger
from ivr.ami.errors import AmiConnectionLost

EOM = "\r\n\r\n"
BANNER_PREFIX = "Asterisk Call Manager/"
# A line that starts a new message; seeing one inside a frame means the frame
# before it lost its terminating blank line.
_MESSAGE_START = re.compile(r"(?m)^(?:Event|Response): ", re.IGNORECASE)
# Events that carry a Response header of their own (captured: OriginateResponse,
# "Event: OriginateResponse / Privilege / ActionID / Response: Success / ..."):
# there a Response line is one of the event's headers, not a new message.
_EVENTS_WITH_RESPONSE = re.compile(r"Event: OriginateResponse\r?$", re.IGNORECASE | re.MULTILINE)

log = get_logger(__name__)


class HotlineAMIProtocol(AMIProtocol):
    def connection_made(self, transport):
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self.garbage_frames = 0

    def data_received(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        if "\ufffd" in text:
            log.error("ami.invalid_utf8", detail="replaced with U+FFFD", raw=data.hex(" ")[:400])
        self._buffer += text
        if self.version is None and self._buffer.startswith(BANNER_PREFIX[:len(self._buffer)]):
            line, sep, rest = self._buffer.partition("\r\n")
            if not sep:
                return
            self.version = line[len(BANNER_PREFIX):].strip()
            self._buffer = rest
            log.info("ami.banner", version=self.version)
        while True:
            frame, sep, rest = self._buffer.partition(EOM)
            if not sep:
                break
            self._buffer = rest
            self._handle_frame(frame)

    def _handle_frame(self, frame: str) -> None:
        frame = frame.strip("\r\n")
        if not frame:
            return
        starts = []
        for match in _MESSAGE_START.finditer(frame):
            if match.group(0).lower().startswith("response") and starts and \
                    _EVENTS_WITH_RESPONSE.match(frame, starts[-1]):
                continue
            starts.append(match.start())
        if len(starts) > 1 or (starts and starts[0] > 0):
            # Text before the last message start belongs to a message whose end was lost.
            cut = starts[-1]
            self._report_garbage("ami.frame_truncated", frame[:cut])
            frame = frame[cut:]
        message = Message.from_line(frame)
        if message is None:
            self._report_garbage("ami.frame_unparseable", frame)
            return
        try:
            self.handle_message(message)
        except Exception:  # a bug in a handler must not kill the connection
            log.exception("ami.handler_failed", message=dict(message))

    def _report_garbage(self, what: str, text: str) -> None:
        self.garbage_frames += 1
        log.warning(what, frame=text[:300])

    def handle_message(self, message: Message) -> None:
        # Responses and list items are matched by ActionID only. (panoramisk prefers
        # a CommandID, which would swallow AsyncAGIExec events meant for the menu.)
        # A finished action is no longer pending, so an event that still carries its
        # ActionID (OriginateResponse) is dispatched as the event it is.
        pending = self.responses.get(message.action_id) if message.action_id else None
        if pending is not None:
            if pending.add_message(message):
                self.responses.pop(message.action_id, None)
            return
        if "event" in message:
            if str(message["event"]).lower() == "shutdown":
                log.warning("ami.asterisk_shutting_down", restart=message.get("Restart"))
            self.factory.dispatch(message)

    def connection_lost(self, exc):
        if self._buffer.strip():
            self._report_garbage("incomplete AMI frame discarded at disconnect", self._buffer)
            self._buffer = ""
        if not self.closed:
            self.close()
            self.factory.connection_lost(exc)

    def close(self) -> None:
        """Fail every unanswered action at once: the caller decides whether to retry
        (panoramisk would silently resend them after the next login)."""
        for action in list(self.responses.values()):
            if not action.future.done():
                action.future.set_exception(AmiConnectionLost(f"{action.get('Action')}: connection lost"))
        self.responses.clear()
        if not self.closed:
            try:
                self.transport.close()
            finally:
                self.closed = True
