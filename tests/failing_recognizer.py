"""A real Vosk recogniser that fails part-way, the way Vosk reports a broken
decode (RuntimeError from AcceptWaveform), given to the pool through its
``recognizer_factory`` seam."""

from __future__ import annotations

from asr.engine.recognizer import vosk_recognizer


class FailingRecognizer:
    """Delegates to ``real`` until it has been given more than ``fail_after`` bytes."""

    def __init__(self, real, fail_after: int):
        self._real, self._fed, self._limit = real, 0, fail_after

    def AcceptWaveform(self, data):
        self._fed += len(data)
        if self._fed > self._limit:
            raise RuntimeError("Failed to process waveform")
        return self._real.AcceptWaveform(data)

    def __getattr__(self, name):
        return getattr(self._real, name)


def failing_after(fail_after: int, *, free_speech_only: bool = False):
    """A ``recognizer_factory`` whose recognisers fail after ``fail_after`` bytes
    (only the free-speech ones if ``free_speech_only``)."""
    def factory(model, rate, grammar):
        real = vosk_recognizer(model, rate, grammar)
        if free_speech_only and grammar is not None:
            return real
        return FailingRecognizer(real, fail_after)
    return factory
