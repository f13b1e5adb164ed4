"""What a recognition stream reports: partial text, final utterances, failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Word:
    text: str
    start: float   # seconds of stream audio
    end: float
    conf: float


@dataclass(frozen=True)
class Partial:
    """The recogniser's current guess for the utterance in progress. The first
    non-empty one is the moment to stop a prompt (barge-in)."""

    text: str
    stream_time: float   # seconds of audio fed to the stream so far


@dataclass(frozen=True)
class Final:
    """One finished utterance.

    ``endpoint`` is True when Vosk's endpointing ended it (trailing silence, or
    ``no_speech_timeout`` of silence, which gives an empty text), False when the
    stream was flushed by :meth:`Stream.finish`. ``stream_time`` is the audio
    position (seconds) at the start of the chunk that completed the utterance and
    ``received_at`` the event-loop time that chunk arrived, so
    ``loop.time() - received_at`` bounds the decision delay from above.
    """

    text: str
    endpoint: bool
    stream_time: float
    received_at: float
    confidence: float | None = None
    words: tuple[Word, ...] = ()

    @property
    def is_silence(self) -> bool:
        """Nothing was recognised (the caller said nothing the model knows)."""
        return not self.text

    @property
    def speech_end(self) -> float | None:
        """End of the last recognised word in stream seconds, if words are on."""
        return self.words[-1].end if self.words else None


@dataclass(frozen=True)
class StreamFailed:
    """The stream ended without a result; the menu should switch to the keypad.

    ``reason``: ``recognizer_error`` (Vosk failed on this call's audio),
    ``overloaded`` (decoding fell too far behind real time), ``unavailable`` (no
    model or every recogniser is in use)."""

    reason: str
    detail: str = ""


Result = Union[Partial, Final, StreamFailed]
