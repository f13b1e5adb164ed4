"""Writing files into config/asterisk: atomically (a temporary file in the same
directory renamed over the target, so Asterisk never reads half a file), with a mode
and, for the secrets, an owner."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hotline.asterisk.errors import AsteriskConfigError

__all__ = ["SECRETS_OWNER_ENV", "atomic_write", "chown"]

# "uid:gid" that should own the secrets files (the uid Asterisk runs as in its
# container); used when hotline-init runs as root. Optional. Read by
# hotline.asterisk.secrets; named here because a failed chown tells the operator
# to unset it.
SECRETS_OWNER_ENV = "HOTLINE_SECRETS_OWNER"


def chown(path: Path, owner: tuple[int, int]) -> None:
    try:
        os.chown(path, *owner)
    except PermissionError as exc:
        raise AsteriskConfigError(
            f"cannot give {path} to {owner[0]}:{owner[1]} ({exc}); run as root or unset {SECRETS_OWNER_ENV}"
        ) from exc


def atomic_write(path: Path, text: str, *, mode: int, owner: tuple[int, int] | None = None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        if owner:
            chown(Path(tmp), owner)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
