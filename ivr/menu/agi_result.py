"""Parsing AGI result lines as Asterisk 22 sends them.

Seen on the wire: ``200 result=0``, ``200 result=0 endpos=3404``,
``200 result= (timeout)``, ``200 result=2``, ``200 result=1 (medical_insurance)``,
``200 result=-1 endpos=20160``, ``HANGUP``, ``510 Invalid or unknown command``,
``511 Command Not Permitted on a dead channel or intercept routine``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_LINE = re.compile(r"^(?P<code>\d{3})[ -](?P<rest>.*)$")
_RESULT = re.compile(r"result=(?P<result>-?[0-9*#]*)\s*(?:\((?P<data>[^)]*)\))?")
_ENDPOS = re.compile(r"endpos=(?P<endpos>\d+)")


@dataclass(frozen=True)
class AgiResult:
    code: int
    result: str          # "" for a timeout
    data: str | None     # the text in parentheses
    endpos: int | None
    line: str

    @property
    def ok(self) -> bool:
        return self.code == 200 and self.result != "-1"

    @property
    def hung_up(self) -> bool:
        return self.result == "-1" or self.line.strip() == "HANGUP" or self.code == 511

    @property
    def timed_out(self) -> bool:
        return self.code == 200 and self.result == "" and (self.data or "").strip() == "timeout"

    def digits(self) -> str:
        """GET DATA's digits, or the key that interrupted a STREAM FILE (sent as its
        ASCII code), or "" when nothing was pressed."""
        if not self.ok or self.result == "":
            return ""
        if self.endpos is not None:  # STREAM FILE: 0 = played to the end, else a key's ASCII code
            try:
                return "" if self.result == "0" else chr(int(self.result))
            except ValueError:
                return ""
        return self.result


def parse_agi_result(raw: str, url_encoded: bool = False) -> AgiResult:
    """Parse one result line; AsyncAGIExec's ``Result`` header is URL-encoded."""
    line = (unquote(raw) if url_encoded else raw).strip()
    if line == "HANGUP":
        return AgiResult(code=200, result="-1", data="hangup", endpos=None, line=line)
    match = _LINE.match(line)
    if not match:
        raise ValueError(f"not an AGI result line: {line!r}")
    code = int(match["code"])
    rest = match["rest"]
    result = _RESULT.search(rest) if code == 200 else None
    endpos = _ENDPOS.search(rest)
    return AgiResult(
        code=code,
        result=result["result"] if result else "",
        data=result["data"] if result else rest,
        endpos=int(endpos["endpos"]) if endpos else None,
        line=line,
    )


def parse_agi_env(encoded: str) -> dict[str, str]:
    """AsyncAGIStart's ``Env``: the agi_* block URL-encoded on one line.
    Raises ValueError when it does not look like an AGI environment."""
    text = unquote(encoded)
    env: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition(": ")
        if not sep or not key.startswith("agi_"):
            raise ValueError(f"malformed AGI environment line: {line[:80]!r}")
        env[key] = value
    if "agi_channel" not in env or "agi_uniqueid" not in env:
        raise ValueError("AGI environment lacks agi_channel/agi_uniqueid")
    return env
