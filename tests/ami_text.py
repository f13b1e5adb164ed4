"""Reading recorded AMI byte streams into header dicts (for the pure tests)."""

from __future__ import annotations

from pathlib import Path


def recorded_messages(path: Path) -> list[dict[str, str]]:
    """Every message Asterisk sent in a recorded .ami file, banner skipped."""
    text = path.read_bytes().decode("utf-8")
    _, _, body = text.partition("\r\n")  # the banner line
    messages = []
    for block in body.split("\r\n\r\n"):
        headers: dict[str, str] = {}
        for line in block.split("\r\n"):
            key, sep, value = line.partition(": ")
            if sep:
                headers.setdefault(key, value)
            elif line.endswith(":"):
                headers.setdefault(line[:-1], "")
        if headers:
            messages.append(headers)
    return messages


def recorded_events(path: Path) -> list[dict[str, str]]:
    return [m for m in recorded_messages(path) if "Event" in m]
