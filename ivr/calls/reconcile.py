"""What Asterisk wrote down about calls → the facts a stored call lacks. Pure.

Each source (queue_log, Master.csv, a recording file) gives the facts it
can about a call, as the live tracker would have made them from AMI events
(caller, times, queue and department, wait, abandon, agent, talk time, end).
:func:`reconcile` compares them with the stored call and keeps only what is
missing: a call the bridge saw keeps every fact it has (those from AMI events
are at least as good), and is only completed (a missed hangup, a missed
abandon); a call the bridge never saw is made. Either way the call is marked
with the source (``reconciled_from``) and gets a ``call.reconciled`` timeline
row naming what was filled and the evidence. Nothing new, nothing written: a
second reading of the same lines changes nothing.

A call the bridge never saw is keyed by the Uniqueid the records carry: the
caller channel's, which is the call's Linkedid (queue_log's callid, the CDR
of the calling channel, MixMonitor's ``${UNIQUEID}.wav``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from hotline.facts import CallFacts, ChangeSet, RecordingFinished, TimelineEntry, dedupe_key
from ivr.calls.asterisk_logs import CdrRecord, QueueLogEntry, uniqueid_time
from ivr.calls.tracker import known
from recordings.orphans import MonitorFile

QUEUE_LOG = "queue_log"
CDR_CSV = "cdr_csv"
RECORDING = "recording"
KIND = "call.reconciled"
# A CDR's dst is the extension last run: a number when the call was dialled
# straight to it, "s" (the start extension) after a Goto into the hotline's context.
_DIALABLE = re.compile(r"\+?[0-9*#]{1,32}")
# queue_log events that end the caller's channel (it hung up in the queue or after the agent).
_CALLER_GONE = {"ABANDON", "COMPLETECALLER"}


@dataclass
class Evidence:
    """What one source says about one call."""

    uniqueid: str
    source: str
    facts: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    last_at: datetime | None = None
    content: list[str] = field(default_factory=list)   # the raw records: the timeline row's key

    def fact(self, column: str, value: Any) -> None:
        """First value wins, as against the store."""
        if value is not None and value != "":
            self.facts.setdefault(column, value)

    def saw(self, at: datetime) -> None:
        self.last_at = at if self.last_at is None or at > self.last_at else self.last_at


def _int(text: str) -> int | None:
    """A count of seconds as queue_log writes it; None for anything else (a column holds int4)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def _started(evidence: Evidence, earliest: datetime) -> None:
    made = uniqueid_time(evidence.uniqueid)
    evidence.facts["started_at"] = min(made, earliest) if made else earliest


def from_queue_log(entries: Iterable[tuple[QueueLogEntry, str]],
                   queue_departments: Mapping[str, str]) -> dict[str, Evidence]:
    """Evidence per call from queue_log entries (with their raw lines), in file order."""
    found: dict[str, Evidence] = {}
    for entry, raw in entries:
        if not entry.about_a_call:
            continue
        ev = found.get(entry.uniqueid)
        if ev is None:
            ev = found[entry.uniqueid] = Evidence(entry.uniqueid, QUEUE_LOG, detail={"entries": []})
            _started(ev, entry.at)
        ev.saw(entry.at)
        ev.content.append(raw)
        ev.detail["entries"].append([entry.at.isoformat(), entry.event, entry.queue,
                                     None if entry.agent == "NONE" else entry.agent, *entry.data])
        _queue_facts(ev, entry, queue_departments)
    return found


def _queue_facts(ev: Evidence, entry: QueueLogEntry, queue_departments: Mapping[str, str]) -> None:
    event, field_ = entry.event, entry.field
    if event == "ENTERQUEUE":
        ev.fact("queue", entry.queue)
        ev.fact("department", queue_departments.get(entry.queue))
        ev.fact("queued_at", entry.at)
        ev.fact("caller_number", known(field_(2)))
    elif event == "CONNECT":
        ev.fact("agent_answered_at", entry.at)
        ev.fact("hold_seconds", _int(field_(1)))
        if entry.agent and entry.agent != "NONE":
            # app_queue logs the member's name, or its interface when it has none.
            ev.fact("agent_interface" if "/" in entry.agent else "agent_name", entry.agent)
    elif event == "ABANDON":
        ev.fact("abandoned_at", entry.at)
        ev.fact("hold_seconds", _int(field_(3)))
    elif event in ("EXITWITHTIMEOUT", "EXITEMPTY"):
        ev.fact("hold_seconds", _int(field_(3)))
    elif event == "EXITWITHKEY":
        ev.fact("hold_seconds", _int(field_(4)))
    elif event in ("COMPLETECALLER", "COMPLETEAGENT"):
        ev.fact("hold_seconds", _int(field_(1)))
        ev.fact("talk_seconds", _int(field_(2)))
    elif event in ("BLINDTRANSFER", "ATTENDEDTRANSFER"):
        ev.fact("hold_seconds", _int(field_(3)))
        ev.fact("talk_seconds", _int(field_(4)))
    if event in _CALLER_GONE:
        ev.fact("ended_at", entry.at)


def from_cdrs(records: Iterable[tuple[CdrRecord, str]],
              queue_departments: Mapping[str, str]) -> dict[str, Evidence]:
    """Evidence per call from Master.csv records (several per call after a
    transfer: the first names the caller, the last one's end is the hangup)."""
    by_call: dict[str, list[tuple[CdrRecord, str]]] = defaultdict(list)
    for record, raw in records:
        by_call[record.uniqueid].append((record, raw))
    found: dict[str, Evidence] = {}
    for uniqueid, items in by_call.items():
        items.sort(key=lambda item: item[0].start)
        first = items[0][0]
        ev = found[uniqueid] = Evidence(uniqueid, CDR_CSV, detail={"records": []})
        _started(ev, first.start)
        ev.fact("caller_channel", first.channel)
        ev.fact("caller_number", known(first.src))
        ev.fact("caller_name", first.caller_name)
        if _DIALABLE.fullmatch(first.dst):
            ev.fact("dialed_number", first.dst)
        for record, raw in items:
            ev.saw(record.end)
            ev.content.append(raw)
            if record.lastapp.lower() == "queue" and record.lastdata:
                queue = record.lastdata.split(",")[0]
                ev.fact("queue", queue)
                ev.fact("department", queue_departments.get(queue))
            ev.detail["records"].append({
                "start": record.start.isoformat(), "end": record.end.isoformat(),
                "disposition": record.disposition, "duration": record.duration,
                "billable_seconds": record.billsec, "last_application": record.lastapp,
                "last_data": record.lastdata, "destination_channel": record.dstchannel or None,
            })
        ev.facts["ended_at"] = max(record.end for record, _ in items)
    return found


@dataclass
class Reconciled:
    changes: ChangeSet
    made: list[str]            # calls made here, whose end is not known
    filled: int = 0            # calls made or completed


def reconcile(evidence: Iterable[Evidence], stored: Mapping[str, Mapping[str, Any]],
              now: datetime) -> Reconciled:
    """The facts each call lacks, with a timeline row per call that gained any."""
    result = Reconciled(ChangeSet(), [])
    for ev in evidence:
        linkedid = ev.uniqueid
        row = stored.get(linkedid)
        if row is None:
            fill = {k: v for k, v in ev.facts.items() if v is not None}
        else:
            fill = {k: v for k, v in ev.facts.items()
                    if k != "started_at" and v is not None and row.get(k) is None}
        if not fill:
            continue
        result.filled += 1
        if row is None and "ended_at" not in fill:
            result.made.append(linkedid)
        result.changes.calls.append(CallFacts(linkedid, {**fill, "reconciled_from": ev.source}))
        result.changes.timeline.append(_timeline(ev, linkedid, sorted(fill), row is None, now))
    return result


def _timeline(ev: Evidence, linkedid: str, filled: Sequence[str], made: bool, now: datetime) -> TimelineEntry:
    return TimelineEntry(
        linkedid=linkedid, uniqueid=ev.uniqueid, occurred_at=ev.last_at or now, kind=KIND,
        detail={"source": ev.source, "made": made, "filled": list(filled), **ev.detail},
        dedupe_key=dedupe_key("reconciled", ev.source, linkedid, ev.content),
    )


def recordings_found(files: Mapping[str, Sequence[MonitorFile]], stored: Mapping[str, Mapping[str, Any]],
                     now: datetime) -> Reconciled:
    """Recording files nobody registered, of calls that are over: each is
    registered (``RecordingFinished``, which the recordings feature acts on
    once committed). A call with no row at all gets one from the file: made
    when its Uniqueid says, ended at an unknown time (``lost_at``)."""
    result = Reconciled(ChangeSet(), [])
    for uniqueid, items in files.items():
        row = stored.get(uniqueid)
        ev = Evidence(uniqueid, RECORDING, detail={"paths": [i.asterisk_path for i in items]},
                      content=[i.asterisk_path for i in items])
        for item in items:
            ev.saw(item.modified_at)
        if row is None:
            started = uniqueid_time(uniqueid)
            if started is None:
                continue
            ev.facts.update(started_at=started, lost_at=now)
        ev.fact("recording_path", items[0].asterisk_path)
        result.changes.recordings.extend(RecordingFinished(uniqueid, uniqueid, i.asterisk_path) for i in items)
        fill = ev.facts if row is None else {k: v for k, v in ev.facts.items() if row.get(k) is None}
        if fill:
            result.filled += 1
            result.changes.calls.append(CallFacts(uniqueid, {**fill, "reconciled_from": RECORDING}))
            result.changes.timeline.append(_timeline(ev, uniqueid, sorted(fill), row is None, now))
    return result
