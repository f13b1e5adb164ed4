"""What a finished MixMonitor file holds: size, duration, checksum, or what is wrong.

Only a regular file inside the recordings folder is ever read. The path comes
from the dialplan (``MIXMONITOR_FILENAME``), so it is not trusted: a path with
``..``, one outside the folder, a symlink leading out of it, a FIFO (reading
one would wait for a writer forever), a device or a directory is ``rejected``
with the reason, and not opened (or, for what only shows once open, not read).

Blocking file I/O: call it from a worker thread (asyncio.to_thread).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import wave
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

WAV_HEADER_BYTES = 44  # a MixMonitor WAV with no audio is exactly its header
STATUSES = ("ok", "empty", "missing", "unreadable", "rejected")
# O_NONBLOCK: opening a FIFO does not wait for a writer; O_NOFOLLOW: a symlink
# swapped in after the checks is not followed; O_NOCTTY: a terminal is not adopted.
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class RecordingFile:
    status: str  # ok | empty | missing | unreadable | rejected
    bytes: int | None = None
    duration_seconds: float | None = None
    sha256: str | None = None
    problem: str | None = None


class Rejected(Exception):
    """The path is not a regular file inside the recordings folder."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def local_path(asterisk_dir: str, local_dir: str, asterisk_path: str) -> Path:
    """Where this service sees a file Asterisk wrote (the shared volume may be
    mounted at another path here). Raises :class:`Rejected` for a path that is
    not below ``asterisk_dir`` or climbs with ``..``."""
    theirs = PurePosixPath(asterisk_path)
    if "\x00" in asterisk_path:
        raise Rejected("the path holds a NUL byte")
    if not theirs.is_absolute():
        raise Rejected(f"not an absolute path inside the recordings folder {asterisk_dir}")
    if ".." in theirs.parts:
        raise Rejected("the path climbs out with '..'")
    try:
        relative = theirs.relative_to(PurePosixPath(asterisk_dir))
    except ValueError:
        raise Rejected(f"not inside the recordings folder {asterisk_dir}") from None
    if not relative.parts:
        raise Rejected("the recordings folder itself, not a file in it")
    return Path(local_dir) / relative


def open_inside(path: Path, root: Path) -> int:
    """A file descriptor of ``path``, which must resolve (symlinks followed) to
    a regular file inside ``root``; raises :class:`Rejected`, or
    FileNotFoundError / OSError for a missing or unreadable one."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not _inside(real, real_root):
        if _inside(os.path.abspath(path), os.path.abspath(root)):
            raise Rejected(f"a symlink leads out of the recordings folder (to {real})")
        raise Rejected(f"outside the recordings folder (resolves to {real})")
    before = os.lstat(real)   # FileNotFoundError: missing (a dangling symlink inside too)
    if not stat.S_ISREG(before.st_mode):
        raise Rejected(f"{_kind(before.st_mode)}, not a regular file")
    try:
        fd = os.open(real, OPEN_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Rejected("the file was swapped for a symlink while it was checked") from None
        raise
    try:
        after = os.fstat(fd)
        if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
            raise Rejected(f"{_kind(after.st_mode)}: the file changed while it was checked")
        opened = f"/proc/self/fd/{fd}"
        if os.path.islink(opened) and not _inside(os.readlink(opened), real_root):
            raise Rejected("a folder on the way was swapped for a symlink out of the recordings folder")
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def inspect_recording(path: Path, root: Path | None = None) -> RecordingFile:
    """``root``: the recordings folder ``path`` must stay inside (the folder
    of ``path`` itself when not given)."""
    try:
        fd = open_inside(path, root if root is not None else path.parent)
    except Rejected as exc:
        return RecordingFile("rejected", problem=f"{path}: {exc}")
    except FileNotFoundError:
        return RecordingFile("missing", problem=f"no file at {path}")
    except OSError as exc:
        return RecordingFile("unreadable", problem=f"cannot open {path}: {exc.strerror}")
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        digest = hashlib.sha256()
        try:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        except OSError as exc:
            return RecordingFile("unreadable", bytes=size, problem=f"cannot read {path}: {exc.strerror}")
        sha = digest.hexdigest()
        if size <= WAV_HEADER_BYTES:
            return RecordingFile("empty", bytes=size, duration_seconds=0.0, sha256=sha,
                                 problem=f"{size} bytes: no audio was recorded")
        duration = None
        problem = None
        if path.suffix.lower() == ".wav":
            try:
                fh.seek(0)
                with wave.open(fh, "rb") as wav:
                    duration = wav.getnframes() / float(wav.getframerate())
            except (wave.Error, EOFError) as exc:
                return RecordingFile("unreadable", bytes=size, sha256=sha, problem=f"bad WAV: {exc}")
        else:
            problem = "duration unknown for this format"
    return RecordingFile("ok", bytes=size, duration_seconds=duration, sha256=sha, problem=problem)
