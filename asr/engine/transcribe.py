"""Whole audio files through the engine, for tools (``hotline asr eval``): the
same recogniser, endpointing and 20 ms framing as a call, without a call.

Runs synchronously (a command-line tool has no event loop to keep free)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from asr.audio import FRAME_BYTES, read_pcm
from asr.engine.model import load_model
from asr.engine.recognizer import Decoder, grammar_json, vosk_recognizer
from asr.engine.results import Final
from hotline.settings import AsrSettings


class FileTranscriber:
    """``transcriber(path) -> text``: the finals of one WAV file (8 kHz mono
    16-bit, as on the phone line), joined by spaces. Loads the model once;
    raises :class:`~asr.engine.model.ModelError` when it cannot."""

    def __init__(self, settings: AsrSettings, grammar: Sequence[str] | None = None):
        self.settings = settings
        self.model = load_model(settings)
        self.grammar = grammar_json(grammar)

    def __call__(self, path: str | Path) -> str:
        pcm = read_pcm(path, self.settings.sample_rate)
        decoder = Decoder(vosk_recognizer(self.model, self.settings.sample_rate, self.grammar),
                          sample_rate=self.settings.sample_rate, partial_interval=self.settings.partial_interval,
                          words=False, grammar=self.grammar)
        try:
            results = []
            for start in range(0, len(pcm), FRAME_BYTES):
                results += decoder.accept(pcm[start:start + FRAME_BYTES], 0.0)
            results += decoder.flush(0.0)
        finally:
            decoder.close()
        return " ".join(r.text for r in results if isinstance(r, Final) and r.text)
