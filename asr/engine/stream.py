"""One call's recognition stream as the event loop sees it.

Every use of the recogniser runs in the pool's worker threads, one job at a time
per stream, in the order the calls were made. A failure of the recogniser ends
this stream with a :class:`StreamFailed` result; other streams carry on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any, Callable, Sequence

from asr.engine.recognizer import Decoder, grammar_json
from asr.engine.results import Result, StreamFailed
from hotline.logs import bound_call, get_logger

log = get_logger(__name__)


class Stream:
    """Feed audio, get partial and final results; created by
    :meth:`RecognizerPool.open_stream`."""

    def __init__(self, call_id: str, decoder: Decoder, executor: concurrent.futures.Executor,
                 on_release: Callable[["Stream", Decoder, bool], None],
                 on_decoded: Callable[[int], None] | None = None):
        self.call_id = call_id
        self._on_decoded = on_decoded    # called in the worker with the bytes each decode took
        self._decoder: Decoder | None = decoder
        self._executor = executor
        self._on_release = on_release
        self._lock = asyncio.Lock()
        self._job: concurrent.futures.Future[Any] | None = None
        self.state = "open"          # open | finished | failed | closed
        self.failure: StreamFailed | None = None
        self.decode_seconds = 0.0    # worker CPU time spent on this stream

    @property
    def is_open(self) -> bool:
        """True until the stream was finished, closed or failed."""
        return self.state == "open"

    @property
    def stream_time(self) -> float:
        """Seconds of audio decoded so far."""
        return self._decoder.stream_time if self._decoder else 0.0

    async def feed(self, pcm: bytes, received_at: float | None = None) -> list[Result]:
        """Decode 16-bit mono audio at the pool's sample rate.

        ``received_at`` (event-loop time the audio arrived; default now) is copied
        into final results for latency accounting. Returns partial/final results,
        or one :class:`StreamFailed` if the recogniser failed; ``[]`` once the
        stream is no longer open."""
        if received_at is None:
            received_at = asyncio.get_running_loop().time()

        def decode(decoder: Decoder) -> list[Result]:
            results = decoder.accept(pcm, received_at)
            if self._on_decoded is not None:
                self._on_decoded(len(pcm))
            return results
        return await self._run("decode", decode)

    async def set_grammar(self, phrases: Sequence[str] | None) -> list[Result]:
        """Restrict recognition to these phrases (``None``: free speech again).
        An utterance in progress is discarded (see :meth:`Decoder.set_grammar`)."""
        grammar = grammar_json(phrases)
        return await self._run("set_grammar", lambda d: d.set_grammar(grammar) or [])

    async def end_utterance(self) -> list[Result]:
        """The final result of the utterance in progress, now (``endpoint=False``,
        empty text if nothing was said); the stream goes on."""
        now = asyncio.get_running_loop().time()
        return await self._run("end_utterance", lambda d: d.end_utterance(now))

    async def reset(self) -> None:
        """Forget the utterance in progress; the stream goes on."""
        await self._run("reset", lambda d: d.reset() or [])

    async def finish(self) -> list[Result]:
        """Flush the utterance in progress (a final result with ``endpoint=False``
        if it has words) and release the recogniser."""
        now = asyncio.get_running_loop().time()
        results = await self._run("finish", lambda d: d.flush(now))
        await self.close()
        if self.state == "closed":
            self.state = "finished"
        return results

    async def close(self) -> None:
        """Release the recogniser without a final result. Idempotent."""
        async with self._lock:
            await self._wait_job()
            if self._decoder is not None:
                self._release("closed")

    async def fail(self, reason: str, detail: str = "") -> StreamFailed:
        """End the stream from outside (e.g. ``overloaded``) and return the failure."""
        failure = StreamFailed(reason, detail)
        async with self._lock:
            await self._wait_job()
            if self._decoder is not None:
                self.failure = failure
                self._release("failed")
        return failure

    async def _run(self, what: str, job: Callable[[Decoder], list[Result]]) -> list[Result]:
        async with self._lock:
            await self._wait_job()
            decoder = self._decoder
            if decoder is None:
                return []
            self._job = self._executor.submit(self._timed, job, decoder)
            try:
                return await asyncio.wrap_future(self._job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                with bound_call(self.call_id):
                    log.warning("asr.stream_failed", during=what, error=repr(exc))
                self.failure = StreamFailed("recognizer_error", f"{what}: {exc!r}")
                self._release("failed")
                return [self.failure]

    def _timed(self, job: Callable[[Decoder], list[Result]], decoder: Decoder) -> list[Result]:
        # Runs in a worker thread; thread CPU time excludes waiting for the GIL or a core.
        started = time.thread_time()
        try:
            return job(decoder)
        finally:
            self.decode_seconds += time.thread_time() - started

    async def _wait_job(self) -> None:
        # A cancelled caller may have left its job running in a worker: the
        # recogniser must never be used by two threads at once.
        job = self._job
        if job is not None and not job.done():
            await asyncio.wait([asyncio.wrap_future(job)])

    def _release(self, state: str) -> None:
        # The pool frees the recogniser or keeps it for another call; a failed
        # one is never reused.
        decoder, self._decoder = self._decoder, None
        self.state = state
        if decoder is not None:
            self._on_release(self, decoder, state != "failed")
