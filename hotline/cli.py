"""The ``hotline`` command: run the service and the operator's chores."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from hotline.logs import configure_logging, get_logger
from hotline.settings import Settings, SettingsError, load_settings

log = get_logger("hotline")


async def _serve(settings: Settings, run_migrations: bool) -> None:
    from aiohttp import web

    from hotline.db import create_pool, migrate
    from hotline.web import create_app
    from ivr.bridge import Bridge
    from ivr.menu.voice_service import VoiceService

    pool = await create_pool(settings.database.url, settings.database.pool_min, settings.database.pool_max)
    voice = None
    try:
        if run_migrations:
            async with pool.acquire() as conn:
                await migrate(conn)
        voice = await VoiceService.start(settings, pool)
        bridge = Bridge(settings, pool, voice.menu if voice else None)
        await bridge.start()
        runner = web.AppRunner(create_app(pool, bridge))
        await runner.setup()
        site = web.TCPSite(runner, settings.service.http_host, settings.service.http_port)
        await site.start()
        log.info("hotline serving", http_port=settings.service.http_port,
                 ami=f"{settings.ami.host}:{settings.ami.port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("hotline stopping")
        await runner.cleanup()
        await bridge.stop()
    finally:
        if voice is not None:
            await voice.close()
        await pool.close()


async def _migrate(settings: Settings) -> list[int]:
    import asyncpg

    from hotline.db import migrate

    conn = await asyncpg.connect(settings.database.url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def _calls(settings: Settings, linkedid: str | None, limit: int) -> object:
    import asyncpg

    from ivr.calls import store

    conn = await asyncpg.connect(settings.database.url)
    try:
        if linkedid is None:
            return [dict(r) for r in await store.recent_calls(conn, limit)]
        call = await store.call_with_outcome(conn, linkedid)
        if call is None:
            raise SystemExit(f"no call {linkedid}")
        events = [dict(r) for r in await store.timeline(conn, linkedid)]
        return {"call": dict(call), "timeline": events}
    finally:
        await conn.close()


def _asterisk_config(settings: Settings, check: bool) -> int:
    from hotline.asterisk.generate import stale_generated, write_generated

    # config/asterisk sits beside the settings file, wherever that was read from.
    base = settings.source.parent if settings.source else Path("config")
    directory = base / "asterisk"
    if check:
        stale = stale_generated(settings, directory)
        if stale:
            print("out of date (run 'hotline asterisk-config'): " + ", ".join(stale), file=sys.stderr)
            return 1
        print(f"{directory} agrees with {settings.source}")
        return 0
    write_generated(settings, directory)
    print(f"wrote generated files in {directory}")
    return 0


def _asterisk_secrets(settings: Settings, directory: str) -> int:
    import os

    from hotline.asterisk.errors import AsteriskConfigError
    from hotline.asterisk.secrets import write_secrets

    try:
        write_secrets(settings, Path(directory), os.environ)
    except AsteriskConfigError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return 2
    print(f"secrets ready in {directory}")
    return 0


def _transcriber(settings: Settings, model: str | None, grammar: str | None):
    """Recognition for the manifest's audio lines: the configured engine, loaded
    on the first audio line (a text-only manifest needs no model). A missing
    model is reported on each audio line, not as a crash."""
    from dataclasses import replace

    asr_settings = replace(settings.asr, model_path=model, model_checksums="") if model else settings.asr
    phrases = None
    if grammar:
        phrases = [line.strip() for line in Path(grammar).read_text(encoding="utf-8").splitlines() if line.strip()]
    loaded = []

    def transcribe(path: str) -> str:
        from asr.engine.model import ModelError
        from asr.engine.transcribe import FileTranscriber

        if not loaded:
            if not asr_settings.model_path:
                raise ModelError("no speech model configured: [asr] model_path, HOTLINE_ASR_MODEL_PATH or --model")
            loaded.append(FileTranscriber(asr_settings, phrases))
        return loaded[0](path)

    return transcribe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__)
    parser.add_argument("--config", help="settings file (default: $HOTLINE_CONFIG or config/hotline.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the AMI bridge, voice menu and web API")
    serve.add_argument("--migrate", action="store_true", help="apply database migrations first")
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("check-config", help="validate settings and print the department table")
    asterisk = commands.add_parser("asterisk-config", help="regenerate config/asterisk from the settings")
    asterisk.add_argument("--check", action="store_true", help="only report whether files are out of date")
    secrets_cmd = commands.add_parser("asterisk-secrets", help="create missing extension/AMI secrets")
    secrets_cmd.add_argument("--dir", required=True, help="where Asterisk includes secrets/ from")
    route = commands.add_parser("route", help="how the voice menu would route a caller's words (JSON)")
    route.add_argument("text")
    asr = commands.add_parser("asr", help="speech recognition tools")
    asr_commands = asr.add_subparsers(dest="asr_command", required=True)
    evaluate = asr_commands.add_parser("eval", help="accuracy of recognition + routing on a JSONL manifest")
    evaluate.add_argument("manifest")
    evaluate.add_argument("--json", action="store_true", help="one JSON object per input line")
    evaluate.add_argument("--min-accuracy", type=float, help="exit 1 below this accuracy (0..1)")
    evaluate.add_argument("--model", help="Vosk model folder for audio lines (default: [asr] model_path)")
    evaluate.add_argument("--grammar", help="file of phrases, one per line: recognise only these "
                                            "(as the menu does with listen_grammar = \"knowledge\")")
    from knowledge.commands import add_parser as add_knowledge_parser
    add_knowledge_parser(commands)
    calls = commands.add_parser("calls", help="recent calls, or one call's timeline")
    calls.add_argument("linkedid", nargs="?")
    calls.add_argument("--limit", type=int, default=20)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"hotline: bad settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.service.log_format)
    if args.command == "serve":
        asyncio.run(_serve(settings, args.migrate))
    elif args.command == "migrate":
        applied = asyncio.run(_migrate(settings))
        print(f"applied migrations: {applied or 'none (up to date)'}")
    elif args.command == "check-config":
        for dept in settings.departments:
            print(f"{dept.code:18} {dept.queue:18} {','.join(dept.extensions):16} {dept.name}")
    elif args.command == "asterisk-config":
        return _asterisk_config(settings, args.check)
    elif args.command == "asterisk-secrets":
        return _asterisk_secrets(settings, args.dir)
    elif args.command == "route":
        from routing.evaluate import run_route

        return run_route(args.text)
    elif args.command == "asr":
        from routing.evaluate import run_eval

        return run_eval(args.manifest, as_json=args.json, min_accuracy=args.min_accuracy,
                        transcribe=_transcriber(settings, args.model, args.grammar))
    elif args.command == "knowledge":
        from knowledge.commands import run_from_args

        return run_from_args(settings, args)
    elif args.command == "calls":
        result = asyncio.run(_calls(settings, args.linkedid, args.limit))
        print(json.dumps(result, default=str, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
