"""The report's figures from the store's counts: rates, goals, labels, and the
period a request or a command line asks for. Pure: no I/O.

Rates are shares (0.25 is 25 %), rounded to four places, and ``None`` when
there is nothing to divide by (no call offered: no answer rate, not 0 %).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from hotline.settings import ReportSettings, TicketSettings
from tickets.model import SURVEY_FAIRLY_SATISFIED, SURVEY_RATINGS, SURVEY_SATISFIED

DEFAULT_DAYS = 7
MAX_DAYS = 366


class BadPeriod(ValueError):
    pass


@dataclass(frozen=True)
class Period:
    first: date           # local dates, both included
    last: date
    department: str | None
    tz: ZoneInfo

    @property
    def since(self) -> datetime:
        return datetime.combine(self.first, time(0), tzinfo=self.tz)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), tzinfo=self.tz)


def period_of(first: str | None, last: str | None, department: str | None, tz: ZoneInfo,
              departments: Mapping[str, str], today: date) -> Period:
    """From ``YYYY-MM-DD`` dates (local, both included; ``last`` defaults to
    ``first``, both missing: the last seven days to ``today``)."""
    try:
        end = date.fromisoformat(last) if last else (date.fromisoformat(first) if first else today)
        start = date.fromisoformat(first) if first else end - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise BadPeriod("dates are YYYY-MM-DD") from None
    if end < start:
        raise BadPeriod("the period ends before it starts")
    if (end - start).days >= MAX_DAYS:
        raise BadPeriod(f"a report covers at most {MAX_DAYS} days")
    if department and department not in departments:
        raise BadPeriod(f"unknown department {department!r}")
    return Period(start, end, department or None, tz)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def within(value: float | None, goal: float) -> bool | None:
    return None if value is None else value <= goal


def compose(period: Period, calls: Mapping[str, Any], hot_topics: list[dict[str, Any]],
            intents: list[dict[str, Any]], unanswered: Mapping[str, Any], tickets: Mapping[str, Any],
            ratings: Mapping[str, int], settings: ReportSettings, ticket_settings: TicketSettings,
            departments: Mapping[str, str]) -> dict[str, Any]:
    """The report as the JSON API, the page and ``hotline report`` give it."""
    offered, total = calls["offered"], calls["calls"]
    escalation = rate(calls["escalated"], total)
    dispatch = rate(tickets["dispatched"], tickets["opened"])
    answers = sum(ratings.get(r, 0) for r in SURVEY_RATINGS)
    satisfied = ratings.get(SURVEY_SATISFIED, 0) + ratings.get(SURVEY_FAIRLY_SATISFIED, 0)
    return {
        "period": {"from": period.first.isoformat(), "to": period.last.isoformat(),
                   "department": period.department,
                   "department_name": departments.get(period.department or "")},
        "calls": {
            **{k: calls[k] for k in ("calls", "offered", "answered", "abandoned", "answered_within",
                                     "in_progress", "ended_in_menu", "self_served", "escalated")},
            "answer_rate": rate(calls["answered"], offered),
            "abandon_rate": rate(calls["abandoned"], offered),
            "service_level": rate(calls["answered_within"], offered),
            "service_level_seconds": settings.service_level_seconds,
            "wait": {"calls": calls["waits"], "mean": calls["wait_mean"], "p90": calls["wait_p90"],
                     "longest": calls["wait_max"], "answered_mean": calls["answer_wait_mean"]},
            "self_service_rate": rate(calls["self_served"], total),
            "escalation_rate": escalation, "escalation_goal": settings.escalation_goal,
            "escalation_within_goal": within(escalation, settings.escalation_goal),
        },
        "hot_topics": hot_topics,
        "intents": [{**i, "name": departments.get(i["department"], i["department"])} for i in intents],
        "unanswered_questions": {"by_status": dict(unanswered["by_status"]),
                                 "total": sum(unanswered["by_status"].values()),
                                 "open": unanswered["open"]},
        "tickets": {
            **{k: v for k, v in tickets.items() if k != "by_source"},
            "by_source": dict(tickets["by_source"]),
            "dispatch_rate": dispatch, "dispatch_goal": ticket_settings.dispatch_goal,
            "dispatch_within_goal": within(dispatch, ticket_settings.dispatch_goal),
            "verify_met_rate": rate(tickets["verified_in_time"], tickets["verify_due_or_met"]),
            "answer_met_rate": rate(tickets["answered_in_time"], tickets["answer_due_or_met"]),
            "knowledge_met_rate": rate(tickets["knowledge_in_time"], tickets["knowledge_due_or_met"]),
        },
        "satisfaction": {"answers": answers, "by_rating": {r: ratings.get(r, 0) for r in SURVEY_RATINGS},
                         "satisfied_rate": rate(satisfied, answers)},
    }


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def rows(report: Mapping[str, Any]) -> list[list[Any]]:
    """The report as a table (section, figure, value) in Chinese, for CSV."""
    calls, wait, tickets = report["calls"], report["calls"]["wait"], report["tickets"]
    period = report["period"]
    table: list[list[Any]] = [["分类", "指标", "数值"],
                              ["统计范围", "开始日期", period["from"]], ["统计范围", "结束日期", period["to"]],
                              ["统计范围", "部门", period["department_name"] or "全部"]]
    table += [["来电", label, value] for label, value in (
        ("来电总数", calls["calls"]), ("进入人工队列", calls["offered"]), ("人工接听", calls["answered"]),
        ("排队中放弃", calls["abandoned"]), ("接通率", _percent(calls["answer_rate"])),
        ("放弃率", _percent(calls["abandon_rate"])),
        (f"{calls['service_level_seconds']}秒内接听率", _percent(calls["service_level"])),
        ("平均等待（秒）", wait["mean"]), ("90%等待不超过（秒）", wait["p90"]), ("最长等待（秒）", wait["longest"]),
        ("语音导航自助解决", calls["self_served"]), ("自助解决率", _percent(calls["self_service_rate"])),
        ("转为工单的来电", calls["escalated"]), ("工单转化率", _percent(calls["escalation_rate"])),
        ("工单转化率目标（不超过）", _percent(calls["escalation_goal"])))]
    table += [["热点问题", f"{t['question'] or t['item']}（{t['item']}）", t["calls"]] for t in report["hot_topics"]]
    table += [["导航分流", i["name"], i["calls"]] for i in report["intents"]]
    table += [["未识别问题", "总数", report["unanswered_questions"]["total"]]]
    table += [["未识别问题", f"待处理：{q['text']}", q["created_at"]] for q in report["unanswered_questions"]["open"]]
    table += [["工单", label, value] for label, value in (
        ("新建", tickets["opened"]), ("已办结（本期新建）", tickets["closed"]),
        ("本期办结", tickets["closed_in_period"]), ("超期未办", tickets["overdue"]),
        ("派发12345", tickets["dispatched"]), ("派发率", _percent(tickets["dispatch_rate"])),
        ("派发率目标（不超过）", _percent(tickets["dispatch_goal"])),
        ("按时核实率", _percent(tickets["verify_met_rate"])), ("按时答复率", _percent(tickets["answer_met_rate"])),
        ("知识库按时补充率", _percent(tickets["knowledge_met_rate"])))]
    satisfaction = report["satisfaction"]
    table += [["满意度", rating, n] for rating, n in satisfaction["by_rating"].items()]
    table += [["满意度", "满意率（满意+基本满意）", _percent(satisfaction["satisfied_rate"])]]
    return table


def to_csv(report: Mapping[str, Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows(report))
    return out.getvalue()
