"""The ``hotline`` command: run the service and the operator's chores."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hotline.logs import configure_logging, get_logger
from hotline.settings import Settings, SettingsError, load_settings

log = get_logger("hotline")


async def _serve(settings: Settings, run_migrations: bool, web_only: bool) -> None:
    from aiohttp import web

    from hotline.app import create_app

    if run_migrations:
        await _migrate(settings)
    runner = web.AppRunner(create_app(settings, bridge=not web_only), handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.service.http_host, settings.service.http_port)
        await site.start()
        log.info("hotline.serving", http_port=settings.service.http_port, web_only=web_only,
                 ami=None if web_only else f"{settings.ami.host}:{settings.ami.port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("hotline.stopping")
    finally:
        await runner.cleanup()


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


ACCOUNTS_TIMEOUT = 5.0   # seconds asterisk-config waits for the database before going on without it


def _account_supervisors(settings: Settings) -> list[str]:
    """The extensions of the enabled supervisor and admin accounts, or none (with a
    warning) when the database cannot be read: the settings' supervisors stay."""
    import asyncpg

    from agents.accounts.store import supervisor_extensions
    from hotline.asterisk.generate import supervisor_extensions as usable

    async def read() -> list[str]:
        conn = await asyncpg.connect(settings.database.url, timeout=ACCOUNTS_TIMEOUT)
        try:
            return await supervisor_extensions(conn)
        finally:
            await conn.close()

    try:
        found = asyncio.run(asyncio.wait_for(read(), ACCOUNTS_TIMEOUT))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
        print(f"hotline: cannot read the supervisors' accounts ({type(exc).__name__}: {exc}); only the settings' "
              f"supervisors ({', '.join(settings.supervisors) or 'none'}) get the supervisor codes. Run again "
              f"once the database is reachable, or pass --no-accounts to say so.", file=sys.stderr)
        return []
    extensions, strangers = usable(settings, found)
    if strangers:
        print(f"hotline: supervisors' accounts at extensions no department has (left out): "
              f"{', '.join(strangers)}", file=sys.stderr)
    print(f"supervisors: {', '.join(settings.supervisors) or 'none'} (settings), "
          f"{', '.join(extensions) or 'none'} (accounts)")
    return extensions


def _asterisk_config(settings: Settings, check: bool, accounts: bool = True) -> int:
    from hotline.asterisk.generate import stale_generated, write_generated

    directory = settings.asterisk_dir
    supervisors = _account_supervisors(settings) if accounts and settings.database.url else []
    if check:
        stale = stale_generated(settings, directory, supervisors)
        if stale:
            print("out of date (run 'hotline asterisk-config'): " + ", ".join(stale), file=sys.stderr)
            return 1
        print(f"{directory} agrees with {settings.source}")
        return 0
    write_generated(settings, directory, supervisors)
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


# -- the commands, declared in one place ----------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Settings, argparse.Namespace], "int | None"]


def _no_arguments(_parser: argparse.ArgumentParser) -> None:
    return None


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--migrate", action="store_true", help="apply database migrations first")
    parser.add_argument("--web-only", action="store_true",
                        help="no AMI connection: serve the web side, with live events from the "
                             "other processes on the same database")


def _asterisk_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="only report whether files are out of date")
    parser.add_argument("--no-accounts", dest="accounts", action="store_false",
                        help="supervisors from the settings only (default: also the supervisors' and admins' "
                             "accounts, read from the database)")


def _asterisk_secrets_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", required=True, help="where Asterisk includes secrets/ from")


def _route_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text")


def _routing_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="routing_command", required=True)
    train = commands.add_parser("train", help="rebuild config/routing/model.json.gz from the corpus (needs the "
                                              "'train' extra: scikit-learn)")
    train.add_argument("--check", action="store_true", help="exit 1 if the committed model is not what "
                                                            "training gives now (nothing written)")


def _asr_arguments(parser: argparse.ArgumentParser) -> None:
    asr_commands = parser.add_subparsers(dest="asr_command", required=True)
    evaluate = asr_commands.add_parser("eval", help="accuracy of recognition + routing on a JSONL manifest")
    evaluate.add_argument("manifest")
    evaluate.add_argument("--json", action="store_true", help="one JSON object per input line")
    evaluate.add_argument("--min-accuracy", type=float, help="exit 1 below this accuracy (0..1)")
    evaluate.add_argument("--model", help="Vosk model folder for audio lines (default: [asr] model_path)")
    evaluate.add_argument("--grammar", help="file of phrases, one per line: recognise only these "
                                            "(as the menu does with listen_grammar = \"knowledge\")")


def _knowledge_arguments(parser: argparse.ArgumentParser) -> None:
    from knowledge.commands import add_arguments

    add_arguments(parser)


def _calls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("linkedid", nargs="?")
    parser.add_argument("--limit", type=int, default=20)


def _tokens_arguments(parser: argparse.ArgumentParser) -> None:
    from hotline.auth.commands import add_arguments

    add_arguments(parser)


def _run_tokens(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.auth.commands import run

    return run(settings, args)


def _agents_arguments(parser: argparse.ArgumentParser) -> None:
    from agents.accounts.commands import add_arguments

    add_arguments(parser)


def _run_agents(settings: Settings, args: argparse.Namespace) -> int:
    from agents.accounts.commands import run

    return run(settings, args)


def _dead_letters_arguments(parser: argparse.ArgumentParser) -> None:
    from ivr.calls.dead_letters import add_arguments

    add_arguments(parser)


def _prompts_arguments(parser: argparse.ArgumentParser) -> None:
    from sounds.commands import add_arguments

    add_arguments(parser)


def _run_prompts(settings: Settings, args: argparse.Namespace) -> int:
    from sounds.commands import run

    return run(settings, args)


def _run_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from ivr.calls.dead_letters import run

    return asyncio.run(run(settings, args))


def _run_serve(settings: Settings, args: argparse.Namespace) -> int:
    from hotline.asterisk.carrier import warn_placeholder
    from hotline.asterisk.secrets import refuse_unsafe_serve  # exits when the AMI secret is weak

    refuse_unsafe_serve(settings, uses_ami=not args.web_only)
    warn_placeholder(settings)
    asyncio.run(_serve(settings, args.migrate, args.web_only))
    return 0


def _run_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    applied = asyncio.run(_migrate(settings))
    print(f"applied migrations: {applied or 'none (up to date)'}")
    return 0


def _run_check_config(settings: Settings, _args: argparse.Namespace) -> int:
    from hotline.asterisk.carrier import warn_placeholder

    warn_placeholder(settings)
    for dept in settings.departments:
        print(f"{dept.code:18} {dept.queue:18} {','.join(dept.extensions):16} {dept.name}")
    return 0


def _run_route(_settings: Settings, args: argparse.Namespace) -> int:
    from routing.evaluate import run_route

    return run_route(args.text)


def _run_routing(settings: Settings, args: argparse.Namespace) -> int:
    from routing.training import run_train

    return run_train(settings, check=args.check)


def _run_asr(settings: Settings, args: argparse.Namespace) -> int:
    from routing.evaluate import run_eval

    return run_eval(args.manifest, as_json=args.json, min_accuracy=args.min_accuracy,
                    transcribe=_transcriber(settings, args.model, args.grammar))


def _run_knowledge(settings: Settings, args: argparse.Namespace) -> int:
    from knowledge.commands import run_from_args

    return run_from_args(settings, args)


def _run_calls(settings: Settings, args: argparse.Namespace) -> int:
    result = asyncio.run(_calls(settings, args.linkedid, args.limit))
    print(json.dumps(result, default=str, ensure_ascii=False, indent=2))
    return 0


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    from reports.commands import add_arguments

    add_arguments(parser)


def _run_report(settings: Settings, args: argparse.Namespace) -> int:
    from reports.commands import run

    return run(settings, args)


COMMANDS: tuple[Command, ...] = (
    Command("serve", "run the AMI bridge, voice menu and web API", _serve_arguments, _run_serve),
    Command("migrate", "apply database migrations", _no_arguments, _run_migrate),
    Command("check-config", "validate settings and print the department table", _no_arguments,
            _run_check_config),
    Command("asterisk-config", "regenerate config/asterisk from the settings", _asterisk_config_arguments,
            lambda settings, args: _asterisk_config(settings, args.check, args.accounts)),
    Command("asterisk-secrets", "create missing extension/AMI secrets", _asterisk_secrets_arguments,
            lambda settings, args: _asterisk_secrets(settings, args.dir)),
    Command("route", "how the voice menu would route a caller's words (JSON)", _route_arguments, _run_route),
    Command("asr", "speech recognition tools", _asr_arguments, _run_asr),
    Command("routing", "the intent classifier (train)", _routing_arguments, _run_routing),
    Command("knowledge", "the knowledge base (import, export, check, unplaced)", _knowledge_arguments,
            _run_knowledge),
    Command("calls", "recent calls, or one call's timeline", _calls_arguments, _run_calls),
    Command("tokens", "API tokens for machines (create, list, revoke)", _tokens_arguments, _run_tokens),
    Command("agents", "people's accounts (add, list, disable, enable, reset-password, set-role)",
            _agents_arguments, _run_agents),
    Command("dead-letters", "rows PostgreSQL refused: list them, replay them once fixed",
            _dead_letters_arguments, _run_dead_letters),
    Command("prompts", "the Mandarin sounds and hold music Asterisk plays (build, list)", _prompts_arguments,
            _run_prompts),
    Command("report", "the supervisors' report for a period: calls, waits, topics, tickets (JSON or CSV)",
            _report_arguments, _run_report),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description=__doc__)
    parser.add_argument("--config", help="settings file (default: $HOTLINE_CONFIG or config/hotline.toml)")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.arguments(commands.add_parser(command.name, help=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"hotline: bad settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.service.log_format)
    command = next(c for c in COMMANDS if c.name == args.command)
    return command.run(settings, args) or 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
