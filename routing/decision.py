"""What the router decided and why: the record the menu acts on and the call's
timeline stores."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Mapping


class Action(str, Enum):
    ROUTE = "route"                # queue the caller at ``department``
    CONFIRM = "confirm"            # "您是要办理……吗？" then route or re-prompt
    REPROMPT = "reprompt"          # ask once more
    KEYPAD = "keypad"              # give up on speech: the keypad menu (``menu``)
    OPERATOR = "operator"          # a person: the fallback department's queue
    SELF_SERVICE = "self_service"  # play ``item``'s short answer

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Match:
    """One term of the knowledge base found in the transcript."""

    term: str                      # as written in the knowledge base
    heard: str                     # the characters of the transcript it matched
    kind: str                      # exact | pinyin | fuzzy | approx
    quality: float
    start: int                     # span in the filler-free transcript
    end: int
    departments: tuple[str, ...]   # departments that own the term (empty: topic word)
    items: tuple[str, ...]         # knowledge items that list it


@dataclass(frozen=True)
class Decision:
    text: str                      # the transcript as given
    content: str                   # normalised, fillers removed: what was matched
    action: Action
    department: str | None         # None for reprompt/keypad
    item: str | None               # knowledge item id
    confidence: float              # 0..1
    reason: str                    # one line for people: why
    matches: tuple[Match, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()   # departments by score, best first
    item_score: float = 0.0
    topics: tuple[str, ...] = ()   # hours / address / progress cues heard
    key: str | None = None         # a key said or typed ("按3")
    menu: str | None = None        # keypad menu to open (action keypad)
    fillers: tuple[str, ...] = ()
    attempt: int = 1
    model: tuple[tuple[str, float], ...] = ()   # the classifier's top classes and probabilities
    model_id: tuple[tuple[str, str], ...] = ()  # the classifier's version, training-data and file hashes
    out_of_scope: bool = False     # chit-chat, a wrong number, talk to someone else: not a question
    alternative: str | None = None  # (confirm) the department offered next if the caller says no

    @property
    def unplaced(self) -> bool:
        """Speech the router could not place (keep it for the knowledge-base editors)."""
        return (self.action in (Action.REPROMPT, Action.KEYPAD) and bool(self.content) and self.key is None
                and not self.out_of_scope)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable; what ``hotline route`` prints."""
        return {
            "text": self.text,
            "content": self.content,
            "action": self.action.value,
            "department": self.department,
            "item": self.item,
            "confidence": round(self.confidence, 3),
            "reason": self.reason,
            "matches": [
                {"term": m.term, "heard": m.heard, "kind": m.kind, "quality": round(m.quality, 3),
                 "span": [m.start, m.end], "departments": list(m.departments), "items": list(m.items)}
                for m in self.matches
            ],
            "scores": {code: round(score, 3) for code, score in self.scores},
            "item_score": round(self.item_score, 3),
            "topics": list(self.topics),
            "key": self.key,
            "menu": self.menu,
            "fillers": list(self.fillers),
            "attempt": self.attempt,
            "classifier": {label: round(p, 3) for label, p in self.model},
            "model": dict(self.model_id),
            "out_of_scope": self.out_of_scope,
            "alternative": self.alternative,
        }


def timeline_detail(decision: Decision, *, transcripts: Iterable[str] = (),
                    partials: Iterable[str] = (), asr_confidence: float | None = None,
                    reaction: str | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``detail`` of the call-timeline row for one speech decision: the final
    transcript(s) (best first) and optionally the partial results, the recogniser's
    confidence, the chosen intent, the confidence, the menu's reaction (what it
    actually did: e.g. "routed", "played_answer", "confirmed_yes", "reprompted"),
    and the explanation. Compact: the full match list stays out of the timeline."""
    finals = list(transcripts) or [decision.text]
    detail: dict[str, Any] = {
        "transcripts": finals,
        "asr_confidence": None if asr_confidence is None else round(float(asr_confidence), 3),
        "department": decision.department,
        "item": decision.item,
        "confidence": round(decision.confidence, 3),
        "action": decision.action.value,
        "reaction": reaction or decision.action.value,
        "reason": decision.reason,
        "matched": [f"{m.term}<-{m.heard}({m.kind})" if m.heard != m.term else m.term
                    for m in decision.matches],
        "runner_up": ({"department": decision.scores[1][0], "score": round(decision.scores[1][1], 3)}
                      if len(decision.scores) > 1 else None),
        "attempt": decision.attempt,
        # Which trained model decided (its version and the hash of its training data).
        "model": {**dict(decision.model_id), "top": {label: round(p, 3) for label, p in decision.model}},
    }
    partials = list(partials)
    if partials:
        detail["partials"] = partials
    if decision.key is not None:
        detail["key"] = decision.key
    if decision.menu is not None:
        detail["menu"] = decision.menu
    if decision.alternative is not None:
        detail["alternative"] = decision.alternative
    if extra:
        detail.update(extra)
    return detail
