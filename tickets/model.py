"""What a ticket is: its states and the one table of moves between them, where
it came from, its deadlines. Pure: no I/O, no clock of its own.

A ticket's states, as the agents and the ledger name them::

    待核实 ──> 处理中 ──> 已答复 ──> 回访 ──> 已办结
      │          │    ↑     │  │      │        │
      │          │    │     │  └──────│────────┤ (answered and settled at once)
      └──────────┴──> 已派发12345      └──> 重新打开 <┘ (survey 不满意, caller again)
                                            │
                                            └──> 处理中 / 已派发12345

A move not in :data:`TRANSITIONS` is refused (:class:`IllegalTransition`);
every move is a row in the ticket's timeline with who, when and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Mapping
from zoneinfo import ZoneInfo

from hotline.settings import TicketSettings
from tickets.calendar import WorkingCalendar


class TicketState(str, Enum):
    TO_VERIFY = "to_verify"          # 待核实: opened, the caller not contacted yet
    IN_PROGRESS = "in_progress"      # 处理中: verified with the caller, being worked on
    ANSWERED = "answered"            # 已答复: the caller has the solution
    FOLLOW_UP = "follow_up"          # 回访: the satisfaction callback is due or running
    CLOSED = "closed"                # 已办结
    REOPENED = "reopened"            # 重新打开: not settled after all; verified again
    DISPATCHED = "dispatched_12345"  # 已派发12345: handed to the city's platform

    @property
    def label(self) -> str:
        return STATE_LABELS[self]


STATE_LABELS: Mapping[TicketState, str] = {
    TicketState.TO_VERIFY: "待核实",
    TicketState.IN_PROGRESS: "处理中",
    TicketState.ANSWERED: "已答复",
    TicketState.FOLLOW_UP: "回访",
    TicketState.CLOSED: "已办结",
    TicketState.REOPENED: "重新打开",
    TicketState.DISPATCHED: "已派发12345",
}

S = TicketState
TRANSITIONS: Mapping[TicketState, frozenset[TicketState]] = {
    S.TO_VERIFY: frozenset({S.IN_PROGRESS, S.DISPATCHED}),
    S.IN_PROGRESS: frozenset({S.ANSWERED, S.DISPATCHED}),
    S.ANSWERED: frozenset({S.FOLLOW_UP, S.CLOSED, S.REOPENED}),
    S.FOLLOW_UP: frozenset({S.CLOSED, S.REOPENED}),
    S.CLOSED: frozenset({S.REOPENED}),
    S.REOPENED: frozenset({S.IN_PROGRESS, S.DISPATCHED}),
    # 12345 answers the case (已答复) or hands it back (处理中): both come from its replies.
    S.DISPATCHED: frozenset({S.ANSWERED, S.IN_PROGRESS}),
}
# The states waiting for the caller to be contacted (the verify deadline runs).
UNVERIFIED = frozenset({S.TO_VERIFY, S.REOPENED})
# Not closed: on the overdue list while a deadline has passed.
OPEN_STATES = frozenset(set(TicketState) - {S.CLOSED})


class IllegalTransition(ValueError):
    def __init__(self, current: TicketState, wanted: TicketState):
        allowed = "、".join(s.label for s in sorted(TRANSITIONS[current], key=list(TicketState).index))
        super().__init__(f"{current.label} → {wanted.label} is not allowed (from {current.label}: {allowed})")
        self.current = current
        self.wanted = wanted
        self.allowed = TRANSITIONS[current]


def check_transition(current: TicketState, wanted: TicketState) -> None:
    """Raise :class:`IllegalTransition` unless the table allows the move."""
    if wanted not in TRANSITIONS[current]:
        raise IllegalTransition(current, wanted)


class TicketSource(str, Enum):
    DISPOSITION = "disposition"              # the agent marked the call 未解决 / 来电人不满意
    SURVEY = "survey"                        # the caller pressed 3 不满意 in the survey
    ABANDONED = "abandoned"                  # hung up after waiting too long: call back
    UNPLACED = "unplaced_question"           # the menu could not place the question, no agent took it
    MANUAL = "manual"                        # opened by an agent
    CALLBACK_REQUEST = "callback_request"    # the caller asked in the queue to be called back

    @property
    def label(self) -> str:
        return SOURCE_LABELS[self]


SOURCE_LABELS: Mapping[TicketSource, str] = {
    TicketSource.DISPOSITION: "坐席标记",
    TicketSource.SURVEY: "满意度评价",
    TicketSource.ABANDONED: "放弃来电回拨",
    TicketSource.UNPLACED: "语音导航未识别",
    TicketSource.MANUAL: "人工创建",
    TicketSource.CALLBACK_REQUEST: "来电请求回电",
}
# At most one ticket per call from these (the triggers may see a call twice): a caller
# who asked for a callback and whose question the menu could not place has one ticket.
AUTOMATIC_SOURCES = frozenset({TicketSource.ABANDONED, TicketSource.UNPLACED, TicketSource.CALLBACK_REQUEST})
# The same, as the SQL list of tickets/store.py and migration 016's unique index.
AUTOMATIC_SQL = "('abandoned', 'unplaced_question', 'callback_request')"

# What the agents' console stores as a call's disposition; these two open a ticket.
DISPOSITION_UNRESOLVED = "未解决"
DISPOSITION_UNSATISFIED = "来电人不满意"
TICKET_DISPOSITIONS = frozenset({DISPOSITION_UNRESOLVED, DISPOSITION_UNSATISFIED})

# The post-call survey's answers (keys 1, 2, 3).
SURVEY_SATISFIED = "满意"
SURVEY_FAIRLY_SATISFIED = "基本满意"
SURVEY_UNSATISFIED = "不满意"
SURVEY_RATINGS = (SURVEY_SATISFIED, SURVEY_FAIRLY_SATISFIED, SURVEY_UNSATISFIED)
SURVEY_KEYS: Mapping[str, str] = {"1": SURVEY_SATISFIED, "2": SURVEY_FAIRLY_SATISFIED, "3": SURVEY_UNSATISFIED}


class Deadline(str, Enum):
    VERIFY = "verify"          # contact the caller
    ANSWER = "answer"          # give a solution
    KNOWLEDGE = "knowledge"    # add the knowledge-base answer for a gap

    @property
    def label(self) -> str:
        return DEADLINE_LABELS[self]


DEADLINE_LABELS: Mapping[Deadline, str] = {
    Deadline.VERIFY: "核实", Deadline.ANSWER: "答复", Deadline.KNOWLEDGE: "知识库补充",
}
# The tickets' columns holding each deadline, and when it was met.
DUE_COLUMN = {Deadline.VERIFY: "verify_due", Deadline.ANSWER: "answer_due", Deadline.KNOWLEDGE: "knowledge_due"}
MET_COLUMN = {Deadline.VERIFY: "verified_at", Deadline.ANSWER: "answered_at",
              Deadline.KNOWLEDGE: "knowledge_done_at"}


@dataclass(frozen=True)
class Deadlines:
    """Working out the due times from the settings and the calendar."""

    settings: TicketSettings
    calendar: WorkingCalendar

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def due(self, deadline: Deadline, start: datetime) -> datetime:
        if deadline is Deadline.VERIFY:
            return start + timedelta(hours=self.settings.verify_hours)
        if deadline is Deadline.ANSWER:
            return start + timedelta(hours=self.settings.answer_hours)
        return self.calendar.add_working_days(start, self.settings.knowledge_working_days, self.tz)

    def remind_before(self, deadline: Deadline) -> timedelta:
        minutes = {Deadline.VERIFY: self.settings.verify_remind_minutes,
                   Deadline.ANSWER: self.settings.answer_remind_minutes,
                   Deadline.KNOWLEDGE: self.settings.knowledge_remind_minutes}[deadline]
        return timedelta(minutes=minutes)


@dataclass(frozen=True)
class TimerPlan:
    deadline: Deadline
    action: str                # "remind" or "escalate"
    due_at: datetime           # when it fires
    deadline_at: datetime      # the deadline it is about


def timer_plan(deadlines: Deadlines, deadline: Deadline, due: datetime, now: datetime) -> list[TimerPlan]:
    """The timers of one deadline: a reminder before it (unless that moment has
    passed or reminders are off) and the escalation when it passes."""
    plans = []
    before = deadlines.remind_before(deadline)
    if before > timedelta(0) and due - before > now:
        plans.append(TimerPlan(deadline, "remind", due - before, due))
    plans.append(TimerPlan(deadline, "escalate", due, due))
    return plans
