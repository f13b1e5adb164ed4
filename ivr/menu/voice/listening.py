"""Playing a prompt to the caller and waiting for the answer.

A prompt the caller may answer (:func:`ask`) plays with barge-in: speech or a
key stops it. The answer is the first thing the session reports after the
prompt started: a final transcript, a key, a failed recogniser or the end of the
connection; silence when nothing was said within ``answer_timeout`` seconds of
the prompt's end. Recognition results from before the prompt are answers to
nothing and are dropped.

A caller still talking when ``answer_timeout`` ends (the recogniser has words
it has not closed with a final result) is let finish: up to ``answer_overrun``
seconds more for the recogniser's endpoint, then what was said so far is the
answer (the recogniser's final result for it, cut there). Cutting at once
would act on half a sentence, and a partial result is a guess the final one
often corrects; a caller mid-sentence expects to be heard out. The bound keeps
a caller who does not stop, or a noisy line the recogniser never ends, from
holding the menu.

Once an answer is taken the recogniser is reset, so the next turn starts
clean: words the caller was saying when a key or the deadline ended this turn
do not turn up in the next turn's results. Speech over a prompt that is not a
question (a self-service answer) is not reset: it belongs to the next answer.

Nothing here polls: :func:`_answer` waits with :func:`asyncio.wait` on the
playback, the session's next event and the answer's deadline, whichever comes
first.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping

from asr.audiosocket.events import Dtmf, Ended, SessionEvent
from asr.audiosocket.session import CallSession
from asr.engine.results import Final, Partial, StreamFailed
from hotline.logs import get_logger
from ivr.menu.prompts import PromptLibrary, PromptUnavailable

log = get_logger(__name__)

MAX_PARTIALS_KEPT = 5
CUT_GRACE = 1.0     # seconds for the recogniser's final result once an utterance is cut


class Overrun(str, Enum):
    """A caller still talking when the answer's time ended (``answer_overrun`` of ``voice.heard``)."""

    FINISHED = "finished"  # the utterance ended within answer_overrun
    CUT = "cut"            # taken as it stood when answer_overrun ran out


class HeardKind(str, Enum):
    """What came back after a prompt."""

    SPEECH = "speech"      # a final transcript (``text``)
    SILENCE = "silence"    # nothing said before the answer's deadline
    KEY = "key"            # a key (``key``)
    FAILED = "failed"      # the recogniser failed or is unavailable (``detail``)
    ENDED = "ended"        # the AudioSocket connection is over (``detail``)


@dataclass
class Heard:
    kind: HeardKind
    text: str = ""
    key: str = ""
    confidence: float | None = None
    partials: list[str] = field(default_factory=list)
    received_at: float | None = None
    detail: str = ""
    overrun: Overrun | None = None


async def ask(session: CallSession, prompts: PromptLibrary, name: str, values: Mapping[str, str],
              *, answer_timeout: float, answer_overrun: float) -> Heard:
    """Play a prompt (the caller may talk or press a key over it) and return
    the first answer: speech, silence, a key, or why there is none.

    Raises :class:`PromptUnavailable` when the prompt cannot be produced."""
    drop_stale(session)
    pcm = await prompts.prompt(name, **values)
    heard = await _answer(session, pcm, answer_timeout, answer_overrun)
    await session.reset_recognition()
    return heard


async def say(session: CallSession, prompts: PromptLibrary, name: str, **values: str) -> None:
    """A prompt the caller need not answer (transfer, goodbye): no barge-in; a
    prompt that cannot be produced is logged and skipped."""
    try:
        pcm = await prompts.prompt(name, **values)
    except PromptUnavailable as exc:
        log.error("voice.prompt_unavailable", prompt=name, error=str(exc))
        return
    await session.play(pcm, barge_in=False)


def drop_stale(session: CallSession) -> None:
    """Recognition results from before this prompt are answers to nothing."""
    kept = []
    while True:
        event = session.next_event_nowait()
        if event is None:
            break
        if not isinstance(event, (Partial, Final)):
            kept.append(event)
    for event in kept:
        session.put_back(event)


async def _answer(session: CallSession, pcm: bytes, answer_timeout: float, answer_overrun: float) -> Heard:
    """Play ``pcm`` with barge-in and wait for whichever comes first: an event
    that answers, or ``answer_timeout`` seconds after the prompt has ended
    (``answer_overrun`` more for a caller who is still talking then)."""
    loop = asyncio.get_running_loop()
    playing = asyncio.create_task(session.play(pcm, barge_in=True))
    incoming: asyncio.Task[SessionEvent | None] | None = None
    partials: list[str] = []
    speaking = False                  # words heard that no final result has closed yet
    overrun: Overrun | None = None
    deadline: float | None = None     # set when the prompt has ended

    def words_so_far() -> Heard:
        return Heard(HeardKind.SPEECH, text=partials[-1], partials=partials, overrun=Overrun.CUT)

    try:
        while True:
            if incoming is None:
                incoming = asyncio.create_task(session.next_event())
            if deadline is None and playing.done():
                deadline = loop.time() + answer_timeout
            waiting: set[asyncio.Future] = {incoming} if playing.done() else {incoming, playing}
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:                      # the answer's time is up
                if speaking and overrun is None:          # mid-sentence: let the caller finish
                    overrun, deadline = Overrun.FINISHED, loop.time() + answer_overrun
                    continue
                if speaking and overrun is Overrun.FINISHED:   # still talking: take what was said
                    overrun, deadline = Overrun.CUT, loop.time() + CUT_GRACE
                    await session.end_utterance()
                    continue
                if overrun is Overrun.CUT and partials:        # no final result came for it
                    return words_so_far()
                return Heard(HeardKind.SILENCE, partials=partials)
            if incoming not in done:          # the prompt ended: the answer's time starts
                continue
            event, incoming = incoming.result(), None
            if isinstance(event, Partial):
                if event.text:
                    speaking = True
                    if not partials or partials[-1] != event.text:
                        partials = (partials + [event.text])[-MAX_PARTIALS_KEPT:]
            elif isinstance(event, Final):
                speaking = False
                if event.text:
                    return Heard(HeardKind.SPEECH, text=event.text, confidence=event.confidence,
                                 partials=partials, received_at=event.received_at, overrun=overrun)
                if overrun is Overrun.CUT and partials:
                    return words_so_far()
                if playing.done():
                    return Heard(HeardKind.SILENCE, partials=partials)
            elif isinstance(event, Dtmf):
                return Heard(HeardKind.KEY, key=event.digit)
            elif isinstance(event, StreamFailed):
                return Heard(HeardKind.FAILED, detail=event.reason)
            elif isinstance(event, Ended):
                return Heard(HeardKind.ENDED, detail=event.reason)
    finally:
        if incoming is not None:
            # Cancelling a wait on the session's queue takes nothing from it:
            # an event that arrives now stays for the next prompt.
            incoming.cancel()
            await asyncio.wait({incoming})
        if not playing.done():
            session.stop_playback()
        await playing
