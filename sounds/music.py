"""Hold music, composed here and rendered with sox: the project's own work, shipped
under the project's licence (Apache-2.0) with nothing taken from a recording.

Three short pieces of plucked-string arpeggios over a bass note, each on a common,
unhurried chord progression in a different key and tempo, with a little reverb:
calm and quiet (peaks at -9 dBFS, about -22 dBFS RMS), nothing above the phone
band, a second of fade at each end. musiconhold.conf's class ``default`` plays the
files in random order, so a caller hears a few minutes before anything repeats.
Rendering takes about two seconds (one sox process per bar).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sounds.synth import SAMPLE_RATE, SynthesisUnavailable, run

# Semitones above the key's root of a major key's triads, by degree.
_TRIADS = {"I": (0, 4, 7), "ii": (2, 5, 9), "iii": (4, 7, 11), "IV": (5, 9, 12), "V": (7, 11, 14),
           "vi": (9, 12, 16)}
PEAK_DB = -9
RENDERING = 1     # raise when render() changes, so earlier builds' files are not reused


@dataclass(frozen=True)
class Piece:
    name: str
    root: int                 # semitones from A4 (440 Hz) of the key's root in octave 4
    progression: tuple[str, ...]
    bar_seconds: float
    pattern: tuple[int, ...]  # arpeggio: indexes into the chord's notes (0-2, 3-5 an octave up)


PIECES = (
    Piece("hotline-hold-1", root=-9, progression=("I", "vi", "IV", "V") * 6 + ("I",),
          bar_seconds=2.4, pattern=(0, 1, 2, 3, 2, 1)),
    Piece("hotline-hold-2", root=-4, progression=("I", "V", "vi", "IV") * 5 + ("ii", "V", "I"),
          bar_seconds=2.8, pattern=(0, 2, 3, 4, 3, 2)),
    Piece("hotline-hold-3", root=-2, progression=("vi", "IV", "I", "V") * 5 + ("IV", "V", "I"),
          bar_seconds=2.6, pattern=(0, 1, 2, 1, 3, 2)),
)


def identity(piece: Piece) -> str:
    """What decides the piece's audio (an earlier build's file is reused only if equal)."""
    digest = hashlib.sha256(f"{RENDERING} {piece!r}".encode()).hexdigest()[:12]
    return f"sounds.music {piece.name} {digest}"


async def render(piece: Piece, target: Path) -> None:
    """Write ``piece`` as an 8 kHz mono 16-bit WAV file at ``target``."""
    sox = shutil.which("sox")
    if not sox:
        raise SynthesisUnavailable("cannot make the hold music: sox not installed (apt-get install sox), "
                                   "or put recordings in the prompt folder's moh/")
    with tempfile.TemporaryDirectory(prefix="hotline-moh-") as tmp:
        bars = []
        for index, degree in enumerate(piece.progression):
            bar = Path(tmp) / f"{index:03d}.wav"
            await _bar(sox, piece, degree, bar)
            bars.append(str(bar))
        await run([sox, *bars, "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                   str(target), "highpass", "100", "lowpass", "2400", "reverb", "30", "50", "70",
                   "gain", "-n", str(PEAK_DB), "fade", "t", "1", "-0", "2"], b"", timeout=120, output=False)


async def _bar(sox: str, piece: Piece, degree: str, target: Path) -> None:
    """One bar: the chord's root an octave down, and the arpeggio, each note a
    plucked string starting on its beat (sox: one channel per note, delayed, mixed)."""
    chord = [piece.root + s for s in _TRIADS[degree]]
    notes = chord + [n + 12 for n in chord]
    step = piece.bar_seconds / len(piece.pattern)
    tones = [chord[0] - 12] + [notes[i] for i in piece.pattern]
    delays = [0.0] + [round(i * step, 3) for i in range(len(piece.pattern))]
    synth = [arg for tone in tones for arg in ("pluck", f"%{tone}")]
    await run([sox, "-n", "-r", str(SAMPLE_RATE), "-c", str(len(tones)), "-b", "16", str(target),
               "synth", str(piece.bar_seconds), *synth, "delay", *map(str, delays), "remix", "-",
               "trim", "0", str(piece.bar_seconds), "fade", "t", "0.01", "-0", "0.2"], b"", output=False)
