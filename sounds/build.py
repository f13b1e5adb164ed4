"""``hotline prompts build``: every sound Asterisk plays for the hotline, as files.

The output folder has Asterisk's data layout, so it can be (or be mounted as)
``astdatadir`` (/var/lib/asterisk)::

    OUT/sounds/zh/hotline/welcome.wav    the keypad menu  ([menu], [menu.keypad.*])
    OUT/sounds/zh/queue-thereare.wav     app_queue        (queues.conf, [sounds.texts])
    OUT/sounds/zh/digits/5.wav           numbers          (sounds/numbers.py)
    OUT/sounds/hotline-sounds.json       what was built from what, and the licences
    OUT/moh/hotline-hold-1.wav           hold music       (musiconhold.conf [default] directory = moh)

All 8 kHz mono signed 16-bit WAV. For each sound, in this order:

1. a recording ``<prompt_dir>/<name>.wav`` (``[voice] prompt_dir``, config/prompts/,
   e.g. config/prompts/hotline/welcome.wav); another format is converted with sox,
   an unreadable file is logged (``prompts.recording_unusable``) and passed over;
2. the same text already made by the same synthesiser, in OUT or in ``cache`` (the
   image's build): copied;
3. the text spoken by the synthesiser (:mod:`sounds.synth`), silence trimmed.

Hold music: recordings in ``<prompt_dir>/moh/*.wav`` replace the composed pieces
(:mod:`sounds.music`). Files a previous build made and this one does not are
removed; other files in OUT are left alone.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from asr.audio import WavFormatError, read_pcm, write_wav
from hotline.logs import get_logger
from hotline.settings import Settings
from sounds.music import PIECES, identity, render
from sounds.synth import SAMPLE_RATE, Espeak, SynthesisUnavailable, run
from sounds.texts import sound_texts
from sounds.usage import Need, required_sounds

log = get_logger(__name__)

MANIFEST = "hotline-sounds.json"
RECORDING = "recording"
LICENCE = {
    "speech": "Synthesised by `hotline prompts build` with espeak-ng (GPL-3.0-or-later). The GPL covers "
              "the program, not the speech it outputs; the files are shipped with the project.",
    "music": "Composed and rendered by `hotline prompts build` (sounds/music.py): the hotline project's "
             "own work, under the project's licence (Apache-2.0).",
    "recordings": "Files marked 'recording' come from the operator's prompt folder, under the "
                  "operator's terms.",
}


class BuildError(Exception):
    """A sound cannot be made; the message says what to do."""


@dataclass
class Report:
    out: Path
    sounds: dict[str, dict] = field(default_factory=dict)   # name -> manifest entry
    music: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)      # sounds left out (keep_going)

    def lines(self) -> list[str]:
        rows = [f"{name:28} {e['seconds']:6.2f} s  {e['made_by']}" for name, e in self.sounds.items()]
        rows += [f"moh/{name:24} {e['seconds']:6.2f} s  {e['made_by']}" for name, e in self.music.items()]
        return rows


@dataclass
class _Step:
    need: Need
    text: str | None
    recording: Path | None      # the operator's file, if there is one
    earlier: Path | None        # the same text by the same synthesiser, from an earlier build


async def build(settings: Settings, out: Path, synthesiser: Espeak, *, cache: Path | None = None,
                only: set[str] | None = None, music: bool = True, keep_going: bool = False) -> Report:
    """Build the tree in ``out``; ``only`` limits it to those sound names (the
    other files of an earlier build are kept), ``music`` = False skips the hold music.
    A sound that cannot be made raises :class:`BuildError`; with ``keep_going`` it is
    logged (``prompts.sound_unavailable``), listed in ``Report.problems`` and left out."""
    report = Report(out)

    def give_up(error: BuildError) -> None:
        if not keep_going:
            raise error
        log.error("prompts.sound_unavailable", error=str(error))
        report.problems.append(str(error))

    needs = required_sounds(settings, settings.asterisk_dir)
    if only is not None:
        unknown = only - {n.name for n in needs}
        if unknown:
            raise BuildError(f"not a sound the hotline plays: {', '.join(sorted(unknown))} "
                             f"(`hotline prompts list` shows them)")
        needs = [n for n in needs if n.name in only]
    texts = sound_texts(settings)
    recordings = settings.voice.prompt_dir
    language_dir = Path("sounds") / settings.sounds.language
    previous, cached = _manifest(out), _manifest(cache)
    roots = [(out, previous.get("sounds", {})), (cache, cached.get("sounds", {}))] if cache else \
        [(out, previous.get("sounds", {}))]

    steps = []
    for need in needs:
        recording = recordings / f"{need.name}.wav"
        text = texts.get(need.name)
        relative = language_dir / f"{need.name}.wav"
        found = _earlier([(root / relative, entries.get(need.name)) for root, entries in roots],
                         synthesiser.identity, text)
        steps.append(_Step(need, text, recording if recording.is_file() else None, found))
    missing = [s.need for s in steps if s.recording is None and s.text is None]
    if missing:
        give_up(BuildError("no text and no recording for: " + "; ".join(
            f"{n.name} ({n.origin}): add its text to [sounds.texts] in hotline.toml or record "
            f"{recordings / n.name}.wav" for n in missing)))
        steps = [s for s in steps if s.need not in missing]
    unmade = [s.need.name for s in steps if s.recording is None and s.earlier is None]
    if unmade:
        try:
            synthesiser.tools()
        except SynthesisUnavailable as exc:
            more = f" and {len(unmade) - 1} more" if len(unmade) > 1 else ""
            give_up(BuildError(f"cannot synthesise {unmade[0]}{more}: {exc}; or record them in {recordings}/ "
                               f"(`hotline prompts list` names the files)"))
            steps = [s for s in steps if s.need.name not in unmade]

    async def make(step: _Step) -> dict | None:
        try:
            return await _make(step)
        except BuildError as exc:
            give_up(exc)
            return None

    async def _make(step: _Step) -> dict:
        entry = await _from_recording(step.recording) if step.recording else None
        if entry is None and step.earlier is not None:
            entry = {"text": step.text, "made_by": synthesiser.identity, "pcm": read_pcm(step.earlier)}
        if entry is None and step.text is None:
            raise BuildError(f"{step.recording} cannot be used and {step.need.name} has no text to speak "
                             f"instead ({step.need.origin}): add it to [sounds.texts] in hotline.toml")
        if entry is None:
            try:
                pcm = trim_silence(await synthesiser.speak(step.text))
            except SynthesisUnavailable as exc:
                raise BuildError(f"cannot synthesise {step.need.name} ({step.need.origin}): {exc}; or record "
                                 f"{recordings / step.need.name}.wav") from exc
            entry = {"text": step.text, "made_by": synthesiser.identity, "pcm": pcm}
        entry.update(_write(out / language_dir / f"{step.need.name}.wav", entry.pop("pcm")))
        entry["origin"] = step.need.origin
        return entry

    entries = await asyncio.gather(*(make(step) for step in steps))
    report.sounds = {step.need.name: entry for step, entry in zip(steps, entries) if entry is not None}
    if music:
        report.music = await _music(out / "moh", recordings / "moh", previous.get("music", {}),
                                    cached.get("music", {}), cache)
    if only is not None:
        report.sounds = {**previous.get("sounds", {}), **report.sounds}
        report.music = report.music or previous.get("music", {})
    else:
        _remove_stale(out / language_dir, previous.get("sounds", {}), report.sounds)
        if music:
            _remove_stale(out / "moh", previous.get("music", {}), report.music)
    _write_manifest(out, settings, report)
    return report


def trim_silence(pcm: bytes, threshold: int = 300, lead: float = 0.05, tail: float = 0.15) -> bytes:
    """Cut the synthesiser's silence at both ends, keeping ``lead``/``tail`` seconds,
    so app_queue's pieces ("您现在排在第" 五 "位") follow each other closely."""
    samples = array.array("h", pcm[: len(pcm) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    loud = [i for i, s in enumerate(samples) if abs(s) > threshold]
    if not loud:
        return pcm
    start = max(0, loud[0] - int(lead * SAMPLE_RATE))
    end = min(len(samples), loud[-1] + int(tail * SAMPLE_RATE))
    return pcm[2 * start:2 * end]


async def _from_recording(path: Path) -> dict | None:
    """The operator's recording as the line's format, or None (logged) when unusable."""
    try:
        return {"made_by": RECORDING, "file": str(path), "pcm": await asyncio.to_thread(read_pcm, path)}
    except (WavFormatError, OSError) as exc:
        problem = str(exc)
    sox = shutil.which("sox")
    if sox:
        try:
            pcm = await run([sox, str(path), "-t", "raw", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16",
                             "-e", "signed-integer", "-L", "-"], b"")
            return {"made_by": RECORDING, "file": str(path), "converted_from": problem, "pcm": pcm}
        except (OSError, RuntimeError, asyncio.TimeoutError) as exc:
            problem = f"{problem}; sox cannot convert it: {exc}"
    log.error("prompts.recording_unusable", path=str(path), error=problem, detail="synthesising it instead")
    return None


def _earlier(candidates: list[tuple[Path, dict | None]], made_by: str, text: str | None) -> Path | None:
    """The first file an earlier build made (``candidates``: path and its manifest
    entry) with ``made_by`` from ``text``, untouched since."""
    for path, entry in candidates:
        if not entry or entry.get("made_by") != made_by or entry.get("text") != text:
            continue
        try:
            if hashlib.sha256(path.read_bytes()).hexdigest() == entry.get("sha256"):
                return path
        except OSError:
            continue
    return None


async def _music(moh: Path, recorded: Path, previous: dict, cached: dict, cache: Path | None) -> dict:
    """The operator's hold music (``<prompt_dir>/moh/*.wav``) if there is any, else the pieces."""
    made: dict[str, dict] = {}
    for path in sorted(recorded.glob("*.wav")) if recorded.is_dir() else []:
        entry = await _from_recording(path)
        if entry is not None:
            pcm = entry.pop("pcm")
            made[path.stem] = {**entry, **_write(moh / path.name, pcm)}
    if made:
        return made
    roots = [(moh, previous), (cache / "moh", cached)] if cache else [(moh, previous)]
    for piece in PIECES:
        made_by = identity(piece)
        target = moh / f"{piece.name}.wav"
        found = _earlier([(root / target.name, entries.get(piece.name)) for root, entries in roots], made_by, None)
        if found is not None:
            pcm = read_pcm(found)
        else:
            with tempfile.TemporaryDirectory(prefix="hotline-moh-") as tmp:
                await render(piece, Path(tmp) / target.name)
                pcm = read_pcm(Path(tmp) / target.name)
        made[piece.name] = {"made_by": made_by, **_write(target, pcm)}
    return made


def _write(target: Path, pcm: bytes) -> dict:
    """Replace ``target`` whole (Asterisk may be reading the old one); its length
    and checksum for the manifest."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".wav", dir=target.parent)
    os.close(fd)
    try:
        write_wav(tmp, pcm)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"seconds": round(len(pcm) / 2 / SAMPLE_RATE, 2), "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}


def _remove_stale(directory: Path, before: dict, now: dict) -> None:
    for name in set(before) - set(now):
        (directory / f"{name}.wav").unlink(missing_ok=True)


def _manifest(root: Path | None) -> dict:
    if root is None:
        return {}
    try:
        return json.loads((root / "sounds" / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_manifest(out: Path, settings: Settings, report: Report) -> None:
    path = out / "sounds" / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"language": settings.sounds.language, "format": "WAV, 8000 Hz, mono, signed 16-bit",
            "licence": LICENCE, "sounds": report.sounds, "music": report.music}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
