"""What the call tracker decides, as plain data for the store to write."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping


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


@dataclass(frozen=True)
class QueueMemberState:
    queue: str
    interface: str
    member_name: str | None
    paused: bool
    paused_reason: str | None
    status: int | None
    calls_taken: int | None
    removed: bool = False


@dataclass
class ChangeSet:
    calls: list[CallFacts] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    recordings: list[RecordingFinished] = field(default_factory=list)
    members: list[QueueMemberState] = field(default_factory=list)

    def extend(self, other: "ChangeSet") -> None:
        self.calls.extend(other.calls)
        self.timeline.extend(other.timeline)
        self.recordings.extend(other.recordings)
        self.members.extend(other.members)

    def __bool__(self) -> bool:
        return bool(self.calls or self.timeline or self.recordings or self.members)

    def __len__(self) -> int:
        return len(self.calls) + len(self.timeline) + len(self.recordings) + len(self.members)


def dedupe_key(*parts: Any) -> str:
    """A stable key for one happening; the same inputs always give the same key."""
    blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()
