"""The working-day calendar: weekends, public holidays and make-up working days
(调休), so "within 5 working days" means what it means in China.

Pure: dates in, dates out. :func:`load_calendar` reads ``config/calendar.toml``
(one table per year, see that file); :meth:`WorkingCalendar.add_working_days`
is the deadline rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from hotline.logs import get_logger
from hotline.settings import read_toml

log = get_logger(__name__)


class CalendarError(ValueError):
    """The calendar file is missing something or contradicts itself."""


@dataclass(frozen=True)
class WorkingCalendar:
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()     # make-up working days on a weekend
    weekend: frozenset[int] = frozenset({6, 7})  # ISO weekdays
    years: frozenset[int] = frozenset()          # the years the file describes
    _warned: set[int] = field(default_factory=set, compare=False, repr=False)

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        if self.years and day.year not in self.years and day.year not in self._warned:
            self._warned.add(day.year)
            log.warning("calendar.year_missing", year=day.year,
                        detail="counted on weekends alone; add the year's holidays to the calendar file")
        return day.isoweekday() not in self.weekend

    def add_working_days(self, start: datetime, days: int, tz: ZoneInfo) -> datetime:
        """The deadline for "within ``days`` working days" of ``start``: counted
        from the next day (次日起算), due at the end of the ``days``-th working
        day in local time, returned as an aware datetime (midnight after it)."""
        if days < 1:
            raise ValueError("days must be at least 1")
        day = start.astimezone(tz).date()
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)

    def working_days_between(self, first: date, last: date) -> int:
        """Working days from ``first`` to ``last``, both included."""
        count, day = 0, first
        while day <= last:
            count += self.is_working_day(day)
            day += timedelta(days=1)
        return count


def _dates(values: Any, where: str) -> list[date]:
    if not isinstance(values, list):
        raise CalendarError(f"{where} must be a list of dates")
    found: list[date] = []
    for value in values:
        if isinstance(value, date) and not isinstance(value, datetime):
            found.append(value)
            continue
        if not isinstance(value, str):
            raise CalendarError(f"{where}: {value!r} is not a date")
        first, sep, last = value.partition("..")
        try:
            start = date.fromisoformat(first.strip())
            end = date.fromisoformat(last.strip()) if sep else start
        except ValueError as exc:
            raise CalendarError(f"{where}: {value!r} is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from exc
        if end < start:
            raise CalendarError(f"{where}: {value!r} ends before it starts")
        found.extend(start + timedelta(days=n) for n in range((end - start).days + 1))
    return found


def parse_calendar(raw: dict[str, Any], source: str = "calendar") -> WorkingCalendar:
    """Build from the file's tables; raises :class:`CalendarError` naming the
    year and date that is wrong."""
    data = dict(raw)
    weekend = data.pop("weekend", [6, 7])
    if not isinstance(weekend, list) or not all(isinstance(d, int) and 1 <= d <= 7 for d in weekend):
        raise CalendarError(f"{source}: weekend must be a list of ISO weekdays (1 Monday .. 7 Sunday)")
    holidays: set[date] = set()
    workdays: set[date] = set()
    years: set[int] = set()
    for key, table in data.items():
        if not (key.isascii() and key.isdigit() and len(key) == 4) or not isinstance(table, dict):
            raise CalendarError(f"{source}: [{key}] is not a year's table such as [2026]")
        year = int(key)
        unknown = sorted(set(table) - {"holidays", "workdays"})
        if unknown:
            raise CalendarError(f"{source}: [{key}] has unknown key(s): {', '.join(unknown)}")
        off = _dates(table.get("holidays", []), f"{source} [{key}] holidays")
        on = _dates(table.get("workdays", []), f"{source} [{key}] workdays")
        for day in (*off, *on):
            if day.year != year:
                raise CalendarError(f"{source}: [{key}] lists {day}, which is not in {year}")
        both = sorted(set(off) & set(on))
        if both:
            raise CalendarError(f"{source}: [{key}] lists {both[0]} as a holiday and a working day")
        weekday_makeups = [d for d in on if d.isoweekday() not in weekend]
        if weekday_makeups:
            raise CalendarError(f"{source}: [{key}] make-up working day {weekday_makeups[0]} "
                                f"is not on a weekend")
        holidays.update(off)
        workdays.update(on)
        years.add(year)
    return WorkingCalendar(frozenset(holidays), frozenset(workdays), frozenset(weekend), frozenset(years))


def load_calendar(path: str | Path) -> WorkingCalendar:
    path = Path(path)
    return parse_calendar(read_toml(path, CalendarError, "calendar file"), str(path))


def calendar_from(path: str | Path) -> WorkingCalendar:
    """The calendar for the service: an unusable file is logged and weekends
    alone count (a deadline a day or so early on a holiday, never none)."""
    try:
        return load_calendar(path)
    except CalendarError as exc:
        log.error("tickets.calendar_unusable", error=str(exc), detail="counting weekends only")
        return WorkingCalendar()


def calendar_of(holidays: Iterable[date] = (), workdays: Iterable[date] = ()) -> WorkingCalendar:
    """A calendar from explicit dates (every year counts as described)."""
    return WorkingCalendar(frozenset(holidays), frozenset(workdays))
