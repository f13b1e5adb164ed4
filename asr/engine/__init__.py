"""Offline speech recognition with Vosk: model loading, one recogniser per call
stream, decoding in a worker pool off the event loop.

    pool = await RecognizerPool.start(settings)           # loads the model once
    stream = await pool.open_stream(call_id, grammar=[...])
    for result in await stream.feed(pcm):                  # Partial / Final / StreamFailed
        ...
    await stream.finish()
"""

from asr.engine.model import ModelError, SpeechModel, bundled_test_model_path, load_model
from asr.engine.pool import AsrUnavailable, PoolFull, RecognizerPool
from asr.engine.results import Final, Partial, Result, StreamFailed, Word
from asr.engine.stream import Stream

__all__ = [
    "AsrUnavailable", "Final", "ModelError", "Partial", "PoolFull", "RecognizerPool",
    "Result", "SpeechModel", "Stream", "StreamFailed", "Word", "bundled_test_model_path", "load_model",
]
