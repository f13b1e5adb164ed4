"""Audio helpers shared by the speech engine, the AudioSocket server and tests:
8 kHz signed-linear PCM, 20 ms frames, WAV files for prompts and test audio."""

from asr.audio.pcm import FRAME_BYTES, SAMPLE_RATE, duration, frames, silence
from asr.audio.wav import WavFormatError, read_pcm, write_wav

__all__ = ["FRAME_BYTES", "SAMPLE_RATE", "WavFormatError", "duration", "frames", "read_pcm", "silence",
           "write_wav"]
