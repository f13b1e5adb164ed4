"""Tickets' pure rules: the transition table, the working-day calendar (with the
Chinese public-holiday pattern), the deadlines from the settings."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from hotline.settings import SettingsError, TicketSettings, load_settings
from tickets.calendar import CalendarError, calendar_of, load_calendar, parse_calendar
from tickets.model import (
    TRANSITIONS,
    Deadline,
    Deadlines,
    IllegalTransition,
    TicketState,
    check_transition,
    timer_plan,
)

S = TicketState
SHANGHAI = ZoneInfo("Asia/Shanghai")

# The 2026 National Day week as the State Council set it: 1-7 October off, Sunday
# 20 September and Saturday 10 October worked instead (and 25-27 September, 中秋).
NATIONAL_DAY_2026 = calendar_of(
    holidays=[date(2026, 9, 25), date(2026, 9, 26), date(2026, 9, 27)]
    + [date(2026, 10, d) for d in range(1, 8)],
    workdays=[date(2026, 9, 20), date(2026, 10, 10)])


def test_the_documented_path_is_allowed_and_every_other_move_refused():
    path = [S.TO_VERIFY, S.IN_PROGRESS, S.ANSWERED, S.FOLLOW_UP, S.CLOSED, S.REOPENED, S.IN_PROGRESS,
            S.DISPATCHED, S.ANSWERED, S.REOPENED, S.DISPATCHED, S.IN_PROGRESS]
    for current, wanted in zip(path, path[1:]):
        check_transition(current, wanted)
    allowed = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert set(TRANSITIONS) == set(TicketState)
    for a in TicketState:
        for b in TicketState:
            if (a, b) in allowed:
                continue
            with pytest.raises(IllegalTransition) as refused:
                check_transition(a, b)
            assert refused.value.current is a and refused.value.wanted is b
    # A few that must stay impossible: skipping verification to an answer, leaving the
    # closed state other than by reopening, moving to the state one is in.
    assert (S.TO_VERIFY, S.ANSWERED) not in allowed and (S.TO_VERIFY, S.CLOSED) not in allowed
    assert (S.CLOSED, S.IN_PROGRESS) not in allowed and (S.CLOSED, S.CLOSED) not in allowed
    assert "已办结 → 处理中" in str(IllegalTransition(S.CLOSED, S.IN_PROGRESS))


def test_five_working_days_skip_the_holiday_week_and_count_the_make_up_saturday():
    # Opened on Monday 28 September 2026 at 15:00: Tue 29 (1), Wed 30 (2), 1-7 October off,
    # Thu 8 (3), Fri 9 (4), Saturday 10 October, a make-up working day (5): due at its end.
    opened = datetime(2026, 9, 28, 15, 0, tzinfo=SHANGHAI)
    due = NATIONAL_DAY_2026.add_working_days(opened, 5, SHANGHAI)
    assert due == datetime(2026, 10, 11, 0, 0, tzinfo=SHANGHAI)
    # Without the make-up day the same count ends with Monday 12 October.
    plain = calendar_of(holidays=NATIONAL_DAY_2026.holidays)
    assert plain.add_working_days(opened, 5, SHANGHAI) == datetime(2026, 10, 13, 0, 0, tzinfo=SHANGHAI)
    # A make-up Sunday counts too; a holiday on a weekday does not.
    assert NATIONAL_DAY_2026.is_working_day(date(2026, 9, 20))
    assert not NATIONAL_DAY_2026.is_working_day(date(2026, 10, 5))
    assert NATIONAL_DAY_2026.working_days_between(date(2026, 9, 29), date(2026, 10, 11)) == 5
    # Opened late on a Friday in UTC that is already Saturday in Beijing: days are local.
    friday_utc = datetime(2026, 10, 16, 17, 0, tzinfo=timezone.utc)      # Sat 01:00 in Beijing
    assert NATIONAL_DAY_2026.add_working_days(friday_utc, 1, SHANGHAI) == datetime(2026, 10, 20, tzinfo=SHANGHAI)


def test_the_shipped_calendar_holds_the_same_national_day_pattern():
    shipped = load_calendar(load_settings(env={}).tickets.calendar)
    opened = datetime(2026, 9, 28, 15, 0, tzinfo=SHANGHAI)
    assert shipped.add_working_days(opened, 5, SHANGHAI) == datetime(2026, 10, 11, tzinfo=SHANGHAI)
    assert not shipped.is_working_day(date(2026, 2, 16)) and shipped.is_working_day(date(2026, 2, 14))
    assert shipped.years == {2025, 2026}


def test_calendar_mistakes_are_refused_with_the_year_and_date():
    with pytest.raises(CalendarError, match="2026-10-12 is not on a weekend"):
        parse_calendar({"2026": {"workdays": ["2026-10-12"]}})
    with pytest.raises(CalendarError, match="not in 2026"):
        parse_calendar({"2026": {"holidays": ["2025-10-01"]}})
    with pytest.raises(CalendarError, match="as a holiday and a working day"):
        parse_calendar({"2026": {"holidays": ["2026-10-01..2026-10-03"], "workdays": ["2026-10-03"]}})
    with pytest.raises(CalendarError, match="ends before it starts"):
        parse_calendar({"2026": {"holidays": ["2026-10-07..2026-10-01"]}})
    with pytest.raises(CalendarError, match="year's table"):
        parse_calendar({"holidays": {"x": 1}})
    ranges = parse_calendar({"2026": {"holidays": ["2026-10-01..2026-10-07", date(2026, 1, 1)]}})
    assert len(ranges.holidays) == 8


def test_a_year_missing_from_the_calendar_counts_weekends_and_says_so(caplog):
    cal = parse_calendar({"2026": {"holidays": ["2026-10-01"]}})
    assert cal.is_working_day(date(2027, 10, 1))          # a Friday; 2027 is not described
    assert not cal.is_working_day(date(2027, 10, 2))
    assert "calendar.year_missing" in caplog.text and "2027" in caplog.text


def test_deadlines_come_from_the_settings():
    settings = TicketSettings()
    deadlines = Deadlines(settings, NATIONAL_DAY_2026)
    opened = datetime(2026, 9, 28, 7, 0, tzinfo=timezone.utc)       # 15:00 in Beijing
    assert deadlines.due(Deadline.VERIFY, opened) == opened + timedelta(hours=2)
    assert deadlines.due(Deadline.ANSWER, opened) == opened + timedelta(hours=24)
    assert deadlines.due(Deadline.KNOWLEDGE, opened) == datetime(2026, 10, 11, tzinfo=SHANGHAI)
    plans = timer_plan(deadlines, Deadline.VERIFY, opened + timedelta(hours=2), opened)
    assert [(p.action, p.due_at - opened) for p in plans] == [("remind", timedelta(minutes=90)),
                                                             ("escalate", timedelta(hours=2))]
    # A reminder whose moment has passed is not planned; the escalation always is.
    late = timer_plan(deadlines, Deadline.VERIFY, opened + timedelta(minutes=10), opened)
    assert [p.action for p in late] == ["escalate"]


def test_ticket_settings_are_checked(tmp_path):
    source = load_settings(env={}).source
    assert source is not None
    base = re.sub(r"\n\[tickets\]\n.*?(?=\n\[)", "\n", source.read_text(encoding="utf-8"), flags=re.S)
    assert "verify_hours" not in base
    for extra, message in (('[tickets]\nverify_hours = "2"\n', "verify_hours must be a number"),
                           ("[tickets]\nknowledge_working_days = 2.5\n", "must be a whole number"),
                           ('[tickets]\ntimezone = "Mars/Olympus"\n', "not a known time zone"),
                           ('[tickets]\ndispatch_url = "ftp://x"\n', "http:// or https://"),
                           ("[tickets]\nverify_hour = 2\n", "unknown setting")):
        path = tmp_path / "hotline.toml"
        path.write_text(base + "\n" + extra, encoding="utf-8")
        with pytest.raises(SettingsError, match=message):
            load_settings(path, env={})
