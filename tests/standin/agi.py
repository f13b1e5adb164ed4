"""A scripted caller for AsyncAGI: turns AGI command text into result lines.

Result lines follow res_agi.c and the captures, e.g. ``200 result=0``,
``200 result=0 endpos=3404``, ``200 result= (timeout)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable

from .audiosocket import AudioSocketCaller, HangUp


@dataclass(frozen=True)
class Barge:
    """The caller presses ``digit`` while a prompt plays (STREAM FILE escape)."""

    digit: str


@dataclass
class AgiOutcome:
    """What one AGI command produced."""

    result: str                                  # the AGI result line, without "\n"
    exec_code: str = "200"                       # AGIExecEnd ResultCode
    exec_result: str = "Success"                 # AGIExecEnd Result
    variables: list[tuple[str, str]] = field(default_factory=list)   # VarSet before AGIExecEnd
    ends_agi: bool = False                       # ASYNCAGI BREAK: AsyncAGIEnd follows
    after_end: list[tuple[str, str]] = field(default_factory=list)   # VarSet after AsyncAGIEnd
    # An application that runs for a while (EXEC AudioSocket): its result line comes later.
    pending: Awaitable[tuple[str, str | None]] | None = None   # (result line, AGISTATUS if it ends AGI)
    caller_hangs_up: bool = False   # HangupRequest before the result, Hangup after AsyncAGIEnd


def parse_args(command: str) -> list[str]:
    """Split an AGI command like res_agi.c's parse_args (quotes, backslashes)."""
    args: list[str] = []
    current, quoted, escaped, in_word = "", False, False, False
    for char in command:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True
            continue
        if char in " \t" and not quoted and not escaped:
            if in_word:
                args.append(current)
            current, in_word = "", False
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        current += char
        in_word, escaped = True, False
    if in_word:
        args.append(current)
    return args


class AgiCaller:
    """The person on the line: DTMF input, barge-in, hang-up, and the sound files there are.

    ``inputs`` is consumed in order: ``GET DATA`` takes the next item (a
    digit string, ``None`` for a timeout, ``HangUp()`` for a caller who hangs
    up while it plays); ``STREAM FILE`` takes a leading ``Barge`` when its
    digit is an escape digit. After ``hangup_after`` commands every command
    answers ``200 result=-1``. A prompt named in
    ``missing`` has no sound file: ``STREAM FILE`` fails and ends the AGI
    session, ``GET DATA`` answers ``200 result=-1`` and the session stays
    (captures e2e E1, E2). ``GET VARIABLE`` of a function (``QUEUE_MEMBER(q,logged)``)
    asks ``functions`` (the emulator answers app_queue's from its queues), as
    res_agi's handle_getvariable evaluates a name ending in ")".
    """

    def __init__(self, inputs: Iterable[str | Barge | HangUp | None] = (), hangup_after: int | None = None,
                 variables: dict | None = None, audiosocket: AudioSocketCaller | None = None,
                 missing: Iterable[str] = ()) -> None:
        self.inputs = list(inputs)
        self.audiosocket = audiosocket
        self.missing = set(missing)
        self.hangup_after = hangup_after
        self.variables: dict = variables if variables is not None else {}
        self.functions: dict[str, Callable[[list[str]], str]] = {}
        self.executed = 0

    def _next_input(self):
        return self.inputs.pop(0) if self.inputs else None

    def _lookup(self, channel: str, name: str) -> str | None:
        if (channel, name) in self.variables:
            return self.variables[(channel, name)]
        return self.variables.get(name)

    def execute(self, channel: str, command: str) -> AgiOutcome:
        """Run one AGI command on ``channel`` and return its outcome."""
        args = parse_args(command)
        words = [a.upper() for a in args]
        self.executed += 1
        if self.hangup_after is not None and self.executed > self.hangup_after:
            if words[:1] == ["EXEC"]:
                return AgiOutcome("200 result=-1", "200", "Unknown Result")
            return AgiOutcome("200 result=-1", "-1", "Failure")
        verb = " ".join(words[:2])
        if words[:1] == ["ANSWER"]:
            return AgiOutcome("200 result=0")
        if verb in ("STREAM FILE", "GET DATA") and len(args) > 2 and args[2] in self.missing:
            return _missing_file(verb)
        if verb == "STREAM FILE":
            return self._stream_file(args)
        if verb == "GET DATA":
            return self._get_data()
        if verb == "CHANNEL STATUS":
            # handle_channelstatus: "200 result=<ast_channel_state>"; 6 is AST_STATE_UP.
            return AgiOutcome("200 result=6")
        if verb == "SET VARIABLE" and len(args) >= 3:
            value = args[3] if len(args) > 3 else ""
            self.variables[(channel, args[2])] = value
            return AgiOutcome("200 result=1", variables=[(args[2], value)])
        if verb == "GET VARIABLE" and len(args) >= 3:
            value = self._lookup(channel, args[2])
            name, paren, rest = args[2].partition("(")
            if value is None and paren and rest.endswith(")") and name.upper() in self.functions:
                value = self.functions[name.upper()](rest[:-1].split(","))
            return AgiOutcome("200 result=0" if value is None else f"200 result=1 ({value})")
        if verb == "SAY DIGITS":
            # handle_saydigits: 0 when played out (no escape digit given here).
            return AgiOutcome("200 result=0")
        if words[:2] == ["EXEC", "AUDIOSOCKET"]:
            if self.audiosocket is None:   # a test that did not expect speech: nothing listens
                return AgiOutcome("200 result=-1", "200", "Failure", ends_agi=True,
                                  after_end=[("AGISTATUS", "FAILURE")])
            return AgiOutcome("", pending=self.audiosocket.run(args[2] if len(args) > 2 else ""))
        if words[:1] == ["EXEC"]:
            return AgiOutcome("200 result=0")
        if words[:1] == ["HANGUP"]:
            return AgiOutcome("200 result=1", ends_agi=True, after_end=[("AGISTATUS", "HANGUP")])
        if words[:1] in (["VERBOSE"], ["NOOP"]):
            return AgiOutcome("200 result=1")
        if verb == "ASYNCAGI BREAK":
            return AgiOutcome("200 result=0", ends_agi=True, after_end=[("AGISTATUS", "SUCCESS")])
        return AgiOutcome("510 Invalid or unknown command", "510", "Invalid or unknown command")

    def _stream_file(self, args: list[str]) -> AgiOutcome:
        escape = args[3] if len(args) > 3 else ""
        head = self.inputs[0] if self.inputs else None
        if isinstance(head, Barge) and head.digit and head.digit in escape:
            self.inputs.pop(0)
            # handle_streamfile sets PLAYBACKSTATUS to FAILED when res != 0.
            return AgiOutcome(f"200 result={ord(head.digit)} endpos=1200",
                              variables=[("PLAYBACKSTATUS", "FAILED")])
        return AgiOutcome("200 result=0 endpos=3404", variables=[("PLAYBACKSTATUS", "SUCCESS")])

    def _get_data(self) -> AgiOutcome:
        item = self._next_input()
        if isinstance(item, HangUp):
            return _hung_up("200 result=-1")
        if isinstance(item, Barge):
            item = item.digit
        if not item:
            return AgiOutcome("200 result= (timeout)")
        return AgiOutcome(f"200 result={item}")


def _missing_file(verb: str) -> AgiOutcome:
    """A prompt whose sound file does not exist, as captured (e2e E1, E2)."""
    if verb == "STREAM FILE":
        # handle_streamfile returns RESULT_FAILURE, and launch_asyncagi ends the session.
        return AgiOutcome("200 result=-1 endpos=0", "-1", "Failure", ends_agi=True,
                          after_end=[("AGISTATUS", "FAILURE")])
    return AgiOutcome("200 result=-1")   # handle_getdata: RESULT_SUCCESS, the session goes on


def _hung_up(line: str) -> AgiOutcome:
    """The caller hung up while the command ran, in the order of capture 2's
    hangup during EXEC Queue and E2's hangup in AGI: HangupRequest, the result,
    AsyncAGIEnd, AGISTATUS=HANGUP, Hangup."""
    return AgiOutcome(line, ends_agi=True, after_end=[("AGISTATUS", "HANGUP")], caller_hangs_up=True)
