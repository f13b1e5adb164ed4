"""The worker-thread side of one call stream: a Kaldi recogniser and the
conversion of its JSON into results. Nothing here touches the event loop; one
worker at a time uses a :class:`Decoder` (the :class:`Stream` serialises)."""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from asr.engine.model import SpeechModel
from asr.engine.results import Final, Partial, Result, Word

# (model, sample_rate, grammar JSON or None) -> a vosk.KaldiRecognizer or look-alike
RecognizerFactory = Callable[[SpeechModel, int, "str | None"], Any]


def vosk_recognizer(model: SpeechModel, sample_rate: int, grammar: str | None) -> Any:
    """A real Vosk recogniser, optionally restricted to a grammar (JSON list of phrases)."""
    import vosk

    if grammar is None:
        return vosk.KaldiRecognizer(model.vosk_model, sample_rate)
    return vosk.KaldiRecognizer(model.vosk_model, sample_rate, grammar)


def grammar_json(phrases: Sequence[str] | None) -> str | None:
    """Vosk's grammar form: a JSON list of phrases (words must be in the model)."""
    if phrases is None:
        return None
    return json.dumps(list(phrases), ensure_ascii=False)


class Decoder:
    """One recogniser plus the bookkeeping of audio time and partial results."""

    def __init__(self, recognizer: Any, *, sample_rate: int, partial_interval: float, words: bool,
                 grammar: str | None = None):
        self._rec = recognizer
        self.grammar = grammar     # what the recogniser is restricted to now
        self._bytes_per_second = sample_rate * 2
        self._partial_every = int(partial_interval * self._bytes_per_second)
        self._since_partial = 0
        self._last_partial = ""
        self._carry = b""          # an odd trailing byte waits for its other half
        self._running = False      # audio accepted since the last final result
        self._finalized = False    # FinalResult() was the last call: no caller state is left
        self.fed_bytes = 0
        if words:
            self._rec.SetWords(True)

    @property
    def stream_time(self) -> float:
        """Seconds of audio accepted so far."""
        return self.fed_bytes / self._bytes_per_second

    def accept(self, pcm: bytes, received_at: float) -> list[Result]:
        """Decode a chunk of 16-bit mono audio; return what it produced."""
        if self._carry:
            pcm, self._carry = self._carry + pcm, b""
        if len(pcm) % 2:
            pcm, self._carry = pcm[:-1], pcm[-1:]
        if not pcm:
            return []
        start = self.stream_time
        self.fed_bytes += len(pcm)
        self._running = True
        self._finalized = False
        if self._rec.AcceptWaveform(pcm):
            self._since_partial = 0
            self._last_partial = ""
            self._running = False
            return [self._final(self._rec.Result(), True, start, received_at)]
        self._since_partial += len(pcm)
        if self._since_partial < self._partial_every:
            return []
        self._since_partial = 0
        text = json.loads(self._rec.PartialResult()).get("partial", "")
        if not text or text == self._last_partial:
            return []
        self._last_partial = text
        return [Partial(text, self.stream_time)]

    def flush(self, received_at: float) -> list[Result]:
        """End the stream: the pending utterance's final result, if it has words."""
        return [final for final in self.end_utterance(received_at) if final.text]

    def end_utterance(self, received_at: float) -> list[Result]:
        """End the utterance in progress now, as a pause would: its final result
        (``endpoint=False``, empty text without words). Vosk's ``FinalResult()``
        also starts the recogniser afresh, so the stream can go on."""
        final = self._final(self._rec.FinalResult(), False, self.stream_time, received_at)
        self._forget_utterance()
        self._finalized = True
        return [final]

    def reset(self) -> None:
        """Forget the utterance in progress: nothing said so far reaches a later result.

        Vosk's ``Reset()`` is not enough: like an endpoint, it restarts the
        decoder but keeps the feature pipeline, whose frames not yet decoded
        (the last few hundred milliseconds) then begin the next utterance
        (measured: half a word cut by ``Reset()`` came back as the next
        utterance's first word). ``FinalResult()`` rebuilds both; its result is
        dropped."""
        if self._running:
            self._rec.FinalResult()
            self._finalized = True
        self._forget_utterance()

    def _forget_utterance(self) -> None:
        self._carry = b""
        self._running = False
        self._since_partial = 0
        self._last_partial = ""

    def set_grammar(self, grammar: str | None) -> None:
        """Restrict the vocabulary to a grammar, or with ``None`` lift the restriction.

        Vosk aborts the whole process (an uncaught C++ exception) when a grammar is
        set while an utterance is being decoded, so the utterance in progress is
        discarded first. Menus change grammar between prompts, where that is right."""
        self.reset()
        self._rec.SetGrammar(grammar if grammar is not None else "[]")
        self.grammar = grammar

    def close(self) -> None:
        """Free the recogniser now (Vosk frees it when the object is collected)."""
        self._rec = None

    def detach(self) -> Any:
        """Hand the recogniser over for another call, with no trace of this one.

        Vosk rebuilds the feature pipeline (CMVN and i-vector adaptation) and the
        decoder after ``FinalResult()``, but keeps its lazily expanded decoding
        graph, which is what makes a warm recogniser several times cheaper than a
        new one with a large graph (measured in ``bench/asr_streams.py``)."""
        rec, self._rec = self._rec, None
        if rec is not None and not self._finalized:
            rec.FinalResult()
        return rec

    def _final(self, raw: str, endpoint: bool, start: float, received_at: float) -> Final:
        data = json.loads(raw)
        words = tuple(
            Word(w["word"], float(w["start"]), float(w["end"]), float(w.get("conf", 1.0)))
            for w in data.get("result", ())
        )
        confidence = sum(w.conf for w in words) / len(words) if words else None
        return Final(data.get("text", ""), endpoint, start, received_at, confidence, words)
