"""How an answered call ended, in the answering agent's words. Pure.

Every answered call gets a disposition from its agent: 已解决 (resolved), 未解决
(unresolved) or 来电人不满意 (unsatisfied), a note, and the knowledge item the
answer came from. It is stored on the call (``call_dispositions``) and written
to the call's timeline as a ``call.disposed`` row, which the event hub hands to
every subscriber once committed (in this process and, through NOTIFY, in the
others). That row is what the tickets feature follows: an unresolved or
unsatisfied call (``detail["for_ticket"]``) opens a ticket from the stored
disposition (``detail["disposition_id"]``). The note stays out of the row
(it may be long and personal; the table has it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Mapping

from hotline.facts import TimelineEntry, dedupe_key

DISPOSED_KIND = "call.disposed"
MAX_NOTE = 2000


class Outcome(str, Enum):
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    UNSATISFIED = "unsatisfied"

    @property
    def label(self) -> str:
        return LABELS[self]

    @property
    def for_ticket(self) -> bool:
        """Handed over to the tickets feature."""
        return self is not Outcome.RESOLVED


LABELS = {Outcome.RESOLVED: "已解决", Outcome.UNRESOLVED: "未解决", Outcome.UNSATISFIED: "来电人不满意"}


class DispositionError(ValueError):
    def __init__(self, message: str, chinese: str):
        super().__init__(message)
        self.chinese = chinese


@dataclass(frozen=True)
class Disposition:
    linkedid: str
    outcome: Outcome
    note: str
    knowledge_item_id: str | None


def parse(body: Mapping[str, Any]) -> Disposition:
    """A disposition from the console's JSON, or :class:`DispositionError`."""
    linkedid = body.get("linkedid")
    if not isinstance(linkedid, str) or not linkedid.strip() or len(linkedid) > 64:
        raise DispositionError("linkedid is missing", "缺少通话编号")
    try:
        outcome = Outcome(body.get("outcome"))
    except ValueError:
        raise DispositionError("outcome must be resolved, unresolved or unsatisfied",
                               "请选择处理结果：已解决、未解决或来电人不满意") from None
    note = body.get("note", "")
    if not isinstance(note, str):
        raise DispositionError("note must be text", "备注格式不正确")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise DispositionError(f"the note is longer than {MAX_NOTE} characters", f"备注不能超过 {MAX_NOTE} 字")
    if outcome.for_ticket and not note:
        raise DispositionError("an unresolved or unsatisfied call needs a note",
                               "未解决或来电人不满意时，请在备注中写明情况（将转为工单）")
    item = body.get("knowledge_item_id") or None
    if item is not None and (not isinstance(item, str) or len(item) > 80):
        raise DispositionError("knowledge_item_id must be an item's id", "知识条目编号不正确")
    return Disposition(linkedid.strip(), outcome, note, item)


def timeline_entry(disposition_id: int, disposition: Disposition, uniqueid: str | None, account_id: int,
                   agent_name: str, interface: str, at: datetime, previous: str | None) -> TimelineEntry:
    """The ``call.disposed`` row for the call's timeline (one per save: a
    correction is a row of its own)."""
    detail: dict[str, Any] = {
        "disposition_id": disposition_id, "outcome": disposition.outcome.value,
        "label": disposition.outcome.label, "for_ticket": disposition.outcome.for_ticket,
        "account_id": account_id, "by": agent_name, "interface": interface,
        "knowledge_item_id": disposition.knowledge_item_id, "has_note": bool(disposition.note),
    }
    if previous is not None:
        detail["previous_outcome"] = previous
    return TimelineEntry(linkedid=disposition.linkedid, uniqueid=uniqueid, occurred_at=at, kind=DISPOSED_KIND,
                         detail=detail, dedupe_key=dedupe_key("disposition", disposition_id, at.isoformat()))
