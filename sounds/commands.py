"""``hotline prompts``: build the sounds Asterisk plays, or list them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from hotline.settings import Settings

DEFAULT_OUT = "build/asterisk"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sounds.synth import ENGINES

    commands = parser.add_subparsers(dest="prompts_command", required=True)
    build = commands.add_parser("build", help="speak every prompt, queue announcement and number file in "
                                              "Mandarin and compose the hold music, as Asterisk's data folder")
    build.add_argument("--out", default=DEFAULT_OUT,
                       help=f"Asterisk's data folder to fill: OUT/sounds/<language>/..., OUT/moh/ "
                            f"(default {DEFAULT_OUT}; /var/lib/asterisk for a local Asterisk)")
    build.add_argument("--engine", choices=sorted(ENGINES), default="espeak-ng", help="speech synthesiser")
    build.add_argument("--cache", help="an earlier build (the image's) whose files are reused when the text "
                                       "and the synthesiser are the same")
    build.add_argument("--only", nargs="+", metavar="NAME", help="only these sounds (hotline/welcome ...)")
    build.add_argument("--no-music", action="store_true", help="leave the hold music out")
    build.add_argument("--keep-going", action="store_true",
                       help="build what can be built, report the rest and exit 0 (docker compose: Asterisk "
                            "must start even if one sound cannot be made)")
    commands.add_parser("list", help="the sound files Asterisk plays, why, and what each says")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from sounds.build import BuildError, build
    from sounds.synth import SynthesisUnavailable, engine
    from sounds.texts import sound_texts
    from sounds.usage import required_sounds

    if args.prompts_command == "list":
        texts = sound_texts(settings)
        for need in required_sounds(settings, settings.asterisk_dir):
            recording = settings.voice.prompt_dir / f"{need.name}.wav"
            said = f"recording {recording}" if recording.is_file() else texts.get(need.name, "(no text)")
            print(f"{need.name}\t{need.origin}\t{said}")
        return 0
    try:
        report = asyncio.run(build(settings, Path(args.out), engine(args.engine, settings.voice),
                                   cache=Path(args.cache) if args.cache else None,
                                   only=set(args.only) if args.only else None, music=not args.no_music,
                                   keep_going=args.keep_going))
    except (BuildError, SynthesisUnavailable) as exc:
        print(f"hotline prompts build: {exc}", file=sys.stderr)
        return 2
    for line in report.lines():
        print(line)
    print(f"{len(report.sounds)} sounds and {len(report.music)} hold music files in {report.out}")
    for problem in report.problems:
        print(f"hotline prompts build: left out: {problem}", file=sys.stderr)
    return 0
