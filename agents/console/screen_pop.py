"""What the screen-pop shows for a call offered to or answered by an agent. Pure:
rows in, JSON out.

* the caller: the number (masked for agents, :mod:`.masking`) and name;
* what the caller said in the voice menu: the last ``voice.heard`` turn that
  placed the call (its transcript, the intent and the router's confidence, the
  recogniser's confidence, the knowledge item it matched), every transcript
  heard, or the keys pressed in the keypad menu;
* the top knowledge items for that intent (the matched one first);
* the caller's previous calls (``[console] history_days``) and how each ended.

The pop is made once per call (:class:`Pop`) and shown to each console with the
number as its person may see it (:meth:`Pop.for_role`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

from agents.console.dispositions import Outcome
from agents.console.masking import shown_number
from hotline.auth.roles import Role
from hotline.settings import ConsoleSettings, Settings

# call_outcomes.outcome, as the console says it.
CALL_OUTCOMES = {
    "answered": "已接听", "abandoned": "排队时挂断", "unanswered": "未接通", "lost": "中断",
    "ended_in_menu": "在语音菜单结束", "in_progress": "进行中",
}


@dataclass(frozen=True)
class PopCall:
    """The call as the agent board has it (AgentCalled / AgentConnect)."""

    uniqueid: str
    linkedid: str
    queue: str | None
    caller_number: str | None
    caller_name: str | None


@dataclass
class Pop:
    call: PopCall
    menu: dict[str, Any] | None
    knowledge: list[dict[str, Any]]
    history: list[dict[str, Any]] | None     # None: could not be read (see problems)
    department: dict[str, str] | None
    problems: list[str] = field(default_factory=list)

    def for_role(self, role: Role, phase: str, console: ConsoleSettings) -> dict[str, Any]:
        """The message for a console of ``role`` (the number masked as it may see it)."""
        number = shown_number(self.call.caller_number, role, console)
        return {
            "type": "screen_pop", "phase": phase, "uniqueid": self.call.uniqueid, "linkedid": self.call.linkedid,
            "queue": self.call.queue, "department": self.department,
            "caller": {"number": number, "masked": number != self.call.caller_number,
                       "name": self.call.caller_name},
            "menu": self.menu, "knowledge": self.knowledge, "history": self.history,
            "history_days": console.history_days, "problems": self.problems,
        }


def department_of(settings: Settings, code: str | None = None, queue: str | None = None) -> dict[str, str] | None:
    for dept in settings.departments:
        if (code and dept.code == code) or (queue and dept.queue == queue):
            return {"code": dept.code, "name": dept.name, "queue": dept.queue}
    return None


def menu_summary(rows: Iterable[Mapping[str, Any]], settings: Settings,
                 questions: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """What the caller said or pressed in the menu, from the call's menu rows
    (``{"kind", "detail"}``, oldest first); None when the call had no menu.
    ``questions``: knowledge item id -> its question, for the matched item."""
    heard: list[Mapping[str, Any]] = []
    keys: list[str] = []
    routed: Mapping[str, Any] | None = None
    confirmed: Mapping[str, Any] | None = None
    for row in rows:
        detail = row.get("detail") or {}
        kind = row.get("kind")
        if kind == "voice.heard":
            heard.append(detail)
        elif kind == "voice.confirm":
            confirmed = detail
        elif kind == "menu.key" and detail.get("key") is not None:
            keys.append(str(detail["key"]))
        elif kind == "menu.routed":
            routed = detail
    if not heard and not keys and routed is None:
        return None
    transcripts = [t for turn in heard for t in (turn.get("transcripts") or [])[:1] if t]
    # The turn that placed the call: the last one naming a department.
    placed = next((turn for turn in reversed(heard) if turn.get("department")), heard[-1] if heard else None)
    routed_to = (routed or {}).get("department")
    intent = (placed or {}).get("department") or routed_to
    item_id = (placed or {}).get("item")
    summary: dict[str, Any] = {
        "kind": "voice" if heard else "keypad",
        "transcript": ((placed or {}).get("transcripts") or [None])[0],
        "transcripts": transcripts,
        "intent": department_of(settings, code=intent),
        "confidence": (placed or {}).get("confidence"),
        "asr_confidence": (placed or {}).get("asr_confidence"),
        "reaction": (placed or {}).get("reaction"),
        "item": {"id": item_id, "question": (questions or {}).get(item_id)} if item_id else None,
        "confirmed": (confirmed or {}).get("answer"),
        "keys": keys,
        "routed": {"department": department_of(settings, code=routed_to), "reason": (routed or {}).get("reason")}
        if routed else None,
    }
    return summary


def history_json(rows: Iterable[Mapping[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        disposition = row.get("disposition")
        started = row.get("started_at")
        out.append({
            "linkedid": row.get("linkedid"),
            "started_at": started.isoformat() if isinstance(started, datetime) else started,
            "outcome": row.get("outcome"), "outcome_label": CALL_OUTCOMES.get(row.get("outcome") or "", "未知"),
            "department": department_of(settings, code=row.get("department"), queue=row.get("queue")),
            "agent_name": row.get("agent_name"), "talk_seconds": row.get("talk_seconds"),
            "disposition": None if disposition is None else {
                "outcome": disposition, "label": Outcome(disposition).label,
                "note": row.get("disposition_note") or "", "by": row.get("disposed_by")},
        })
    return out


def knowledge_json(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": r["id"], "department": r["department"], "question": r["question"], "answer": r["answer"],
             "procedure": list(r["procedure"]), "materials": list(r["materials"])} for r in rows]
