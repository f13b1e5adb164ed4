"""Transfer of an agent's caller to another department's queue or an extension.

The caller's channel is sent with AMI ``Redirect`` to ``hotline-transfer``
(extensions.conf): ``<queue>`` queues the caller there, ``<extension>`` rings
that phone for 30 s and then queues the caller in ``general_queue`` (never
silence). Why Redirect and not BlindTransfer:

* Redirect of the caller's channel out of a bridged queue call is captured on
  Asterisk 22.10.1 (actions.jsonl: ``Redirect successful``, the caller leaves the
  queue bridge for the destination, the agent's leg hangs up at once and the
  member is Not in use again). It needs the ``call`` write right the bridge has.
* BlindTransfer acts on the transferer: its Channel must be the agent's leg, and
  it sends whatever is bridged to it. It is not captured here, and it depends on
  the bridge allowing transfers. Its one advantage, an AgentComplete with
  ``Reason: transfer`` at once (app_queue.c ``handle_blind_transfer``), the
  agent board does not need: it ends the agent's call when the agent's leg hangs
  up (after a Redirect, AgentComplete comes only when the caller hangs up).

Every transfer, done or refused, is a row in the call's timeline
(``call.transferred`` / ``call.transfer_failed``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Callable

from agents.board import CallInfo
from agents.seat import AgentSeat
from hotline.facts import ChangeSet, TimelineEntry, dedupe_key
from hotline.logs import bound_call, get_logger
from hotline.settings import Settings
from ivr.ami import AmiActionFailed, AmiConnection, AmiError

log = get_logger(__name__)

TRANSFER_CONTEXT = "hotline-transfer"   # extensions.conf


class TargetKind(str, Enum):
    QUEUE = "queue"
    EXTENSION = "extension"


@dataclass(frozen=True)
class TransferTarget:
    kind: TargetKind
    value: str        # a queue or department code, or an extension

    @classmethod
    def queue(cls, name: str) -> "TransferTarget":
        """A department's queue, by queue name or department code."""
        return cls(TargetKind.QUEUE, name)

    @classmethod
    def extension(cls, extension: str) -> "TransferTarget":
        return cls(TargetKind.EXTENSION, extension)


@dataclass(frozen=True)
class TransferReport:
    ok: bool
    target: TransferTarget
    destination: str | None        # the extension in hotline-transfer (queue name or extension)
    linkedid: str | None
    channel: str | None
    message: str                   # Asterisk's answer, or why nothing was sent

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "target": {"kind": self.target.kind.value, "value": self.target.value},
                "destination": self.destination, "linkedid": self.linkedid, "channel": self.channel,
                "message": self.message}


class Transfers:
    def __init__(self, settings: Settings, ami: Callable[[], AmiConnection | None],
                 record: Callable[[ChangeSet], None]):
        """``record``: where timeline rows go (the call writer's submit)."""
        self._settings = settings
        self._ami = ami
        self._record = record

    def destination(self, target: TransferTarget, seat: AgentSeat) -> tuple[str | None, str]:
        """The extension of hotline-transfer for ``target``, or None and why not."""
        if target.kind is TargetKind.QUEUE:
            for dept in self._settings.departments:
                if target.value in (dept.queue, dept.code):
                    return dept.queue, ""
            return None, f"{target.value!r} is not a department or its queue"
        extensions = {e for d in self._settings.departments for e in d.extensions}
        if target.value not in extensions:
            return None, f"{target.value!r} is not one of the agents' extensions"
        if target.value == seat.extension:
            return None, "an agent cannot transfer a caller to their own extension"
        return target.value, ""

    async def transfer(self, seat: AgentSeat, call: CallInfo | None, target: TransferTarget) -> TransferReport:
        """Send the agent's caller to ``target``; never raises."""
        if call is None or not call.connected or not call.caller_channel:
            return TransferReport(False, target, None, None, None, "the agent has no answered call to transfer")
        linkedid = call.linkedid or call.uniqueid
        with bound_call(linkedid):
            destination, refusal = self.destination(target, seat)
            if destination is None:
                log.warning("agents.transfer_refused", interface=seat.interface, target=target.value,
                            reason=refusal)
                self._timeline(seat, call, target, None, ok=False, message=refusal)
                return TransferReport(False, target, None, linkedid, call.caller_channel, refusal)
            ok, message = await self._redirect(call.caller_channel, destination)
            self._timeline(seat, call, target, destination, ok=ok, message=message)
            if ok:
                log.info("agents.transferred", interface=seat.interface, channel=call.caller_channel,
                         destination=destination)
            else:
                log.error("agents.transfer_failed", interface=seat.interface, channel=call.caller_channel,
                          destination=destination, error=message)
            return TransferReport(ok, target, destination, linkedid, call.caller_channel, message)

    async def _redirect(self, channel: str, destination: str) -> tuple[bool, str]:
        ami = self._ami()
        if ami is None:
            return False, "no AMI connection in this process (web-only)"
        try:
            response = await ami.request({"Action": "Redirect", "Channel": channel, "Context": TRANSFER_CONTEXT,
                                          "Exten": destination, "Priority": "1"})
        except AmiActionFailed as exc:
            return False, exc.message
        except AmiError as exc:
            return False, str(exc) or type(exc).__name__
        return True, str(response.get("Message", "")) if not isinstance(response, list) else ""

    def _timeline(self, seat: AgentSeat, call: CallInfo, target: TransferTarget, destination: str | None,
                  *, ok: bool, message: str) -> None:
        detail = {"by": seat.name, "account_id": seat.account_id, "interface": seat.interface,
                  "target_kind": target.kind.value, "target": target.value, "destination": destination,
                  "context": TRANSFER_CONTEXT, "channel": call.caller_channel, "queue": call.queue,
                  "action": "Redirect", "message": message}
        entry = TimelineEntry(linkedid=call.linkedid or call.uniqueid, uniqueid=call.uniqueid,
                              occurred_at=datetime.now(timezone.utc),
                              kind="call.transferred" if ok else "call.transfer_failed",
                              detail={k: v for k, v in detail.items() if v not in (None, "")},
                              dedupe_key=dedupe_key("transfer", uuid.uuid4().hex))
        self._record(ChangeSet(timeline=[entry]))
