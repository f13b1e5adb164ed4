"""``hotline agents add|list|disable|enable|reset-password|set-role``: people's
accounts from the operator's shell (audited as ``cli:<user>``).

Passwords are typed twice at a hidden prompt, or read as one line from
standard input with ``--password-stdin`` (scripts); never from the command
line, where other users could read them in the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

import asyncpg

from agents.accounts import rules, service, store
from agents.accounts.rules import AccountError
from hotline.auth.passwords import Passwords
from hotline.auth.roles import Role
from hotline.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="agents_command", required=True)
    add = sub.add_parser("add", help="create an account (asks for its password)")
    add.add_argument("--login", required=True, help="what the person types to log in (a-z 0-9 . _ -)")
    add.add_argument("--name", required=True, help="the person's name, shown on the pages")
    add.add_argument("--extension", help="their desk phone (8001-8028); optional for admins only")
    add.add_argument("--role", default=Role.AGENT.value, choices=[r.value for r in Role])
    add.add_argument("--queue", action="append", metavar="QUEUE[:PENALTY]",
                     help="a queue they serve (repeat); default: the extension's department at 0, "
                          "general_queue at 1")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.add_parser("list", help="every account (JSON lines; no password hashes)")
    for name, what in (("disable", "stop an account from logging in (ends its sessions)"),
                       ("enable", "let a disabled account log in again")):
        sub.add_parser(name, help=what).add_argument("login")
    reset = sub.add_parser("reset-password", help="set a new password (ends its sessions, lifts a lockout)")
    reset.add_argument("login")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    role = sub.add_parser("set-role", help="change an account's role")
    role.add_argument("login")
    role.add_argument("role", choices=[r.value for r in Role])


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(settings, args))
    except AccountError as exc:
        print(f"hotline agents: {exc}", file=sys.stderr)
        return 1


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise AccountError("no terminal to ask for the password: use --password-stdin", "")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AccountError("the two passwords differ", "")
    return first


# Which phones may use the supervisor codes is generated from the accounts.
SUPERVISOR_HINT = ("supervisor codes: run 'hotline asterisk-config' and 'asterisk -rx \"pjsip reload\"' "
                   "so the phones that may use *1/*2/*3 follow the accounts")


def args_touch_supervisors(args: argparse.Namespace) -> bool:
    """Whether the change may give a phone the supervisor codes or take them away."""
    if args.agents_command == "add":
        return args.role in ("supervisor", "admin")
    return args.agents_command in ("disable", "enable", "set-role")


async def _account(conn: asyncpg.Connection, login: str) -> store.Account:
    account = await store.by_login(conn, rules.normalise_login(login))
    if account is None:
        raise AccountError(f"no account {login!r}", "")
    return account


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    actor = f"cli:{getpass.getuser()}"
    command = args.agents_command
    passwords = Passwords(settings.web)
    conn = await asyncpg.connect(settings.database.url)
    try:
        if command == "add":
            queues = rules.parse_queues(",".join(args.queue)) if args.queue else None
            draft = rules.draft(settings, args.login, args.name, args.extension, Role(args.role), queues)
            if await store.login_taken(conn, draft.login):     # before asking for a password
                raise AccountError(f"login {draft.login!r} is taken", "")
            hashed = await service.password_hash(passwords, _read_password(args.password_stdin))
            account = await service.create(conn, draft, hashed, actor)
            print(f"account {account.id} {account.login!r} ({account.role.value}) created; serves "
                  + (", ".join(f"{s.queue}:{s.penalty}" for s in account.queues) or "no queue"))
        elif command == "list":
            for account in await store.listing(conn):
                print(json.dumps({"id": account.id, "login": account.login, "name": account.name,
                                  "extension": account.extension, "role": account.role.value,
                                  "disabled": account.disabled,
                                  "queues": {s.queue: s.penalty for s in account.queues},
                                  "created_at": account.created_at, "created_by": account.created_by},
                                 default=str, ensure_ascii=False))
        elif command in ("disable", "enable"):
            account = await _account(conn, args.login)
            await service.set_disabled(conn, account.id, command == "disable", actor)
            print(f"account {account.login!r} {command}d")
        elif command == "reset-password":
            account = await _account(conn, args.login)
            hashed = await service.password_hash(passwords, _read_password(args.password_stdin))
            await service.reset_password(conn, account.id, hashed, actor)
            print(f"password of {account.login!r} reset; its sessions are ended")
        elif command == "set-role":
            account = await _account(conn, args.login)
            await service.change_role(conn, account.id, Role(args.role), actor)
            print(f"account {account.login!r} is now {args.role}")
        if args_touch_supervisors(args):
            print(SUPERVISOR_HINT)
        return 0
    finally:
        await conn.close()
