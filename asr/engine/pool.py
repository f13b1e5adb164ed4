"""The recogniser pool: the process's model, one recogniser per call stream, and
the worker threads that decode.

Threads, not processes: vosk's cffi calls release the GIL (two threads decode
two streams in the time one takes; ``bench/asr_streams.py`` measures it), and
threads share the one loaded model instead of loading it per process.

Recognisers of finished calls are kept (``spare_recognizers``) and handed to
the next call with the same grammar: a new recogniser on a large lookahead
graph spends about 0.5 s of CPU expanding the graph in its first second of
audio, a reused one does not. Nothing of the previous caller is kept (see
:meth:`Decoder.detach`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Sequence

from asr.engine.model import SpeechModel, load_model
from asr.engine.recognizer import Decoder, RecognizerFactory, grammar_json, vosk_recognizer
from hotline.settings import AsrSettings
from asr.engine.stream import Stream
from hotline.logs import bound_call, get_logger

log = get_logger(__name__)


class AsrUnavailable(RuntimeError):
    """No recogniser for this call; the menu uses the keypad."""


class PoolFull(AsrUnavailable):
    """``max_streams`` recognisers are in use."""


class RecognizerPool:
    """Hands out :class:`Stream` objects and runs their decoding in worker threads."""

    def __init__(self, model: SpeechModel, settings: AsrSettings, *,
                 recognizer_factory: RecognizerFactory | None = None,
                 executor: concurrent.futures.Executor | None = None):
        self.model = model
        self.settings = settings
        self._factory = recognizer_factory or vosk_recognizer
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.worker_count, thread_name_prefix="vosk")
        self._streams: set[Stream] = set()
        self._reserved = 0
        self._spares: dict[str | None, list[Any]] = {}   # grammar JSON -> idle recognisers
        self._spares_lock = threading.Lock()              # filled from worker threads
        self.reused = 0
        # Decoding done, all streams together (updated by the workers): audio
        # bytes given to recognisers and the jobs that gave them.
        self.decoded_bytes = 0
        self.decode_jobs = 0
        self._counter_lock = threading.Lock()
        self._checked_grammars: set[str] = set()
        self.closed = False

    @classmethod
    async def start(cls, settings: AsrSettings, *,
                    recognizer_factory: RecognizerFactory | None = None) -> "RecognizerPool":
        """Load the model (in a thread) and start the workers. Raises
        :class:`~asr.engine.model.ModelError` naming the folder."""
        model = await asyncio.to_thread(load_model, settings)
        return cls(model, settings, recognizer_factory=recognizer_factory)

    @property
    def active(self) -> int:
        """Streams holding a recogniser."""
        return len(self._streams) + self._reserved

    async def open_stream(self, call_id: str, grammar: Sequence[str] | None = None) -> Stream:
        """A new stream for one call, optionally restricted to a grammar of phrases.
        Raises :class:`PoolFull` when ``max_streams`` are in use."""
        if self.closed:
            raise AsrUnavailable("the recogniser pool is closed")
        if self.active >= self.settings.max_streams:
            raise PoolFull(f"all {self.settings.max_streams} recognisers are in use")
        grammar_text = grammar_json(grammar)
        if grammar is not None and grammar_text not in self._checked_grammars:
            self._checked_grammars.add(grammar_text)
            unknown = self.model.unknown_words(grammar)
            if unknown:
                with bound_call(call_id):
                    log.warning("asr.grammar_unknown_words", words=unknown)
        recognizer = self._take_spare(grammar_text)
        if recognizer is None:
            self._reserved += 1
            try:
                loop = asyncio.get_running_loop()
                recognizer = await loop.run_in_executor(
                    self._executor, self._factory, self.model, self.settings.sample_rate, grammar_text)
            finally:
                self._reserved -= 1
        decoder = Decoder(recognizer, sample_rate=self.settings.sample_rate,
                          partial_interval=self.settings.partial_interval, words=self.settings.words,
                          grammar=grammar_text)
        stream = Stream(call_id, decoder, self._executor, self._release, self._count_decode)
        self._streams.add(stream)
        return stream

    @property
    def free(self) -> int:
        """Recognisers that can still be handed out (``max_streams`` - :attr:`active`)."""
        return max(0, self.settings.max_streams - self.active)

    def _count_decode(self, size: int) -> None:
        # Runs in a worker thread.
        with self._counter_lock:
            self.decoded_bytes += size
            self.decode_jobs += 1

    @property
    def spare(self) -> int:
        """Idle recognisers kept for the next calls."""
        with self._spares_lock:
            return sum(len(v) for v in self._spares.values())

    async def close(self) -> None:
        """Close every stream, free the spare recognisers and stop the workers."""
        self.closed = True
        for stream in list(self._streams):
            await stream.close()
        if self._own_executor:
            # Jobs not started yet (recycling finished calls' recognisers) are
            # dropped; only what runs now is waited for.
            await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        with self._spares_lock:
            self._spares.clear()

    def _take_spare(self, grammar: str | None) -> Any:
        with self._spares_lock:
            idle = self._spares.get(grammar)
            if idle:
                self.reused += 1
                return idle.pop()
        return None

    def _release(self, stream: Stream, decoder: Decoder, reusable: bool) -> None:
        # Called on the loop when a stream ends; the recogniser work happens in a worker.
        self._streams.discard(stream)
        keep = reusable and not self.closed and self.spare < self.settings.spare_recognizers
        try:
            self._executor.submit(self._recycle if keep else Decoder.close, decoder)
        except RuntimeError:  # executor already shut down
            decoder.close()

    def _recycle(self, decoder: Decoder) -> None:
        # Runs in a worker thread.
        recognizer = decoder.detach()
        if recognizer is None:
            return
        with self._spares_lock:
            kept = sum(len(v) for v in self._spares.values())
            if not self.closed and kept < self.settings.spare_recognizers:
                self._spares.setdefault(decoder.grammar, []).append(recognizer)
                return
        del recognizer  # freed here, in the worker
