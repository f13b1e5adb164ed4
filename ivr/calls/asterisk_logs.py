"""What Asterisk writes down about calls by itself: a line of ``queue_log`` or
of cdr-csv's ``Master.csv``, parsed. Pure: text in, a record or
:class:`BadLine` out.

Formats, as Asterisk 22 writes them with the project's configuration
(captures E11 and ``tests/fixtures/asterisk/logs/``):

* ``queue_log``: ``epoch|callid|queue|agent|EVENT|data1|data2|...``; for a
  caller's events ``callid`` is the caller channel's Uniqueid (the call's
  Linkedid); member and queue events have ``NONE``, ``MANAGER`` or ``CLI``.
  ``agent`` is the member's name (its interface when it has none).
* ``Master.csv`` (cdr.conf ``[csv]`` ``usegmtime = yes``, ``loguniqueid = yes``,
  ``loguserfield = yes``): accountcode, src, dst, dcontext, clid, channel,
  dstchannel, lastapp, lastdata, start, answer, end, duration, billsec,
  disposition, amaflags, uniqueid, userfield; times UTC, ``YYYY-MM-DD HH:MM:SS``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import datetime, timezone

# A channel's Uniqueid: epoch.sequence, optionally after the system name.
UNIQUEID = re.compile(r"(?:[A-Za-z0-9_-]{1,64}-)?(\d{9,10})\.\d{1,9}")
CDR_FIELDS = 18
_CDR_TIME = "%Y-%m-%d %H:%M:%S"
_CLID = re.compile(r'^\s*"(?P<name>.*)"\s*<(?P<number>[^<>]*)>\s*$')


class BadLine(ValueError):
    """A line that is not what Asterisk writes; the reason says why."""


@dataclass(frozen=True)
class QueueLogEntry:
    at: datetime
    uniqueid: str          # the caller channel's Uniqueid ("NONE" etc. for member events)
    queue: str
    agent: str             # member name, or interface; "NONE" when none
    event: str             # ENTERQUEUE, CONNECT, ABANDON, COMPLETECALLER, ...
    data: tuple[str, ...]  # data1, data2, ...

    @property
    def about_a_call(self) -> bool:
        return UNIQUEID.fullmatch(self.uniqueid) is not None

    def field(self, number: int) -> str:
        """``data<number>`` (1-based), "" when absent."""
        return self.data[number - 1] if 0 < number <= len(self.data) else ""


@dataclass(frozen=True)
class CdrRecord:
    uniqueid: str
    src: str
    dst: str
    dcontext: str
    clid: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    start: datetime
    answer: datetime | None
    end: datetime
    duration: int
    billsec: int
    disposition: str
    userfield: str

    @property
    def caller_name(self) -> str | None:
        """The name in ``"name" <number>``; None when empty or ``<unknown>``."""
        match = _CLID.match(self.clid)
        name = match["name"].replace('""', '"').strip() if match else ""
        return None if name in ("", "<unknown>") else name


def _text(raw: bytes) -> str:
    if b"\x00" in raw:
        raise BadLine("holds NUL bytes")
    try:
        return raw.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise BadLine(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _epoch(text: str, what: str) -> datetime:
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise BadLine(f"{what} {text[:20]!r} is not a Unix time")
    return datetime.fromtimestamp(int(text), tz=timezone.utc)


def parse_queue_log(raw: bytes) -> QueueLogEntry:
    """One ``queue_log`` line (without its newline)."""
    text = _text(raw)
    parts = text.split("|")
    if len(parts) < 5:
        raise BadLine(f"{len(parts)} fields, a queue_log line has at least 5")
    stamp, callid, queue, agent, event, *data = parts
    if not event or not event.replace("_", "").isalnum() or not event.isupper():
        raise BadLine(f"event {event[:20]!r} is not a queue_log event")
    return QueueLogEntry(_epoch(stamp, "time"), callid, queue, agent, event, tuple(data))


def _cdr_time(text: str, what: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, _CDR_TIME).replace(tzinfo=timezone.utc)
    except ValueError:
        raise BadLine(f"{what} {text[:25]!r} is not a time") from None


def _seconds(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise BadLine(f"{what} {text[:20]!r} is not a number of seconds")
    return int(text)


def parse_cdr_csv(raw: bytes) -> CdrRecord:
    """One ``Master.csv`` line (without its newline)."""
    text = _text(raw)
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as exc:
        raise BadLine(f"bad CSV: {exc}") from None
    fields = rows[0] if rows else []
    if len(fields) != CDR_FIELDS:
        raise BadLine(f"{len(fields)} fields, expected {CDR_FIELDS} (loguniqueid and loguserfield on)")
    (_account, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start, answer, end,
     duration, billsec, disposition, _amaflags, uniqueid, userfield) = fields
    if not UNIQUEID.fullmatch(uniqueid):
        raise BadLine(f"uniqueid {uniqueid[:40]!r} is not a channel's Uniqueid")
    started = _cdr_time(start, "start")
    ended = _cdr_time(end, "end")
    if started is None or ended is None:
        raise BadLine("no start or end time")
    return CdrRecord(uniqueid, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
                     started, _cdr_time(answer, "answer"), ended, _seconds(duration, "duration"),
                     _seconds(billsec, "billsec"), disposition, userfield)


def uniqueid_time(uniqueid: str) -> datetime | None:
    """When the channel was made: a Uniqueid starts with Asterisk's clock then."""
    match = UNIQUEID.fullmatch(uniqueid)
    return datetime.fromtimestamp(int(match[1]), tz=timezone.utc) if match else None
