"""The MixMonitor files in the recordings folder, with the call each belongs to.

Registration normally follows the recorded channel's hangup (the tracker knows
the file from ``MIXMONITOR_FILENAME``). A call the bridge did not see, or only
saw from a resync after a restart (CoreShowChannels does not say what a
channel records), leaves a file nobody registers. The dialplan names every
file after the recorded channel's Uniqueid (``${UNIQUEID}.wav``, an ad hoc
recording ``<Uniqueid>-<what>.wav``), so the file itself says whose it is.

The caller decides which of them to register: not those of a call still
going on (its hangup registers them), nor, for a call nobody knows of, a file
written to a moment ago (its call may still be going on).

Blocking file I/O: call :func:`monitor_files` from a worker thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

# The Uniqueid a file name starts with (epoch.sequence, perhaps after the system name).
_NAMED_AFTER = re.compile(r"((?:[A-Za-z0-9_]{1,64}-)?\d{9,10}\.\d{1,9})(?![0-9])")


@dataclass(frozen=True)
class MonitorFile:
    uniqueid: str
    asterisk_path: str      # as Asterisk names it (MIXMONITOR_FILENAME): the index's key
    modified_at: datetime


def uniqueid_of(name: str) -> str | None:
    match = _NAMED_AFTER.match(name)
    return match[1] if match else None


def monitor_files(local_dir: str | Path, asterisk_dir: str) -> list[MonitorFile]:
    """Every file below ``local_dir`` named after a Uniqueid, under the path
    Asterisk gave it. Symlinks and special files are listed too: registration
    flags them."""
    found: list[MonitorFile] = []
    root = Path(local_dir)
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        relative = PurePosixPath(Path(folder).relative_to(root).as_posix())
        for name in sorted(names):
            uniqueid = uniqueid_of(name)
            if uniqueid is None:
                continue
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            found.append(MonitorFile(uniqueid, str(PurePosixPath(asterisk_dir) / relative / name),
                                     datetime.fromtimestamp(info.st_mtime, tz=timezone.utc)))
    return found
