"""The facts the service commits, as plain data: what the call tracker and the
features decide, what the call writer writes, and what the event hub publishes
once it is committed. Neutral ground: every package may import it, it imports
none of them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class CallFacts:
    """Facts about one call. A fact already stored is never overwritten, so an
    event delivered twice cannot change a call twice."""

    linkedid: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class TimelineEntry:
    linkedid: str
    uniqueid: str | None
    occurred_at: datetime
    kind: str
    detail: Mapping[str, Any]
    dedupe_key: str


@dataclass(frozen=True)
class RecordingFinished:
    """A recorded channel hung up: its MixMonitor file is complete."""

    linkedid: str
    uniqueid: str
    asterisk_path: str


@dataclass
class ChangeSet:
    calls: list[CallFacts] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    recordings: list[RecordingFinished] = field(default_factory=list)
    # Rows for a feature's own tables, by the name of the sink the feature
    # registered with the call writer (written in the same transaction, in order).
    rows: dict[str, list[Any]] = field(default_factory=dict)

    def extend(self, other: "ChangeSet") -> None:
        self.calls.extend(other.calls)
        self.timeline.extend(other.timeline)
        self.recordings.extend(other.recordings)
        for sink, rows in other.rows.items():
            self.rows.setdefault(sink, []).extend(rows)

    def __bool__(self) -> bool:
        return bool(self.calls or self.timeline or self.recordings or any(self.rows.values()))

    def __len__(self) -> int:
        return (len(self.calls) + len(self.timeline) + len(self.recordings)
                + sum(len(r) for r in self.rows.values()))


def dedupe_key(*parts: Any) -> str:
    """A stable key for one happening; the same inputs always give the same key."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Committed:
    """What one write transaction made true, as the event hub publishes it.

    ``timeline`` holds only the rows that were new to the database (a replayed
    event is not published twice). A batch committed by another ``hotline``
    process arrives through PostgreSQL NOTIFY with its timeline only
    (``local`` is false, and calls, recordings and rows are empty)."""

    timeline: Sequence[TimelineEntry]
    committed_at: float                       # time.time() after COMMIT
    origin: str                               # the process that committed it
    local: bool = True
    calls: Sequence[CallFacts] = ()
    recordings: Sequence[RecordingFinished] = ()
    rows: Mapping[str, Sequence[Any]] = field(default_factory=dict)
