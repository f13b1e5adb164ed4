"""``hotline tokens create|list|revoke``: API tokens for machines, from the
operator's shell (audited as ``cli:<user>``)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json

import asyncpg

from hotline.auth import tokens
from hotline.auth.roles import Role
from hotline.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="tokens_command", required=True)
    create = sub.add_parser("create", help="make a token (printed once, stored only as a hash)")
    create.add_argument("--name", required=True, help="what uses it, e.g. 'wallboard 2F'")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    sub.add_parser("list", help="every token, live and revoked (JSON lines)")
    revoke = sub.add_parser("revoke", help="stop a token from working")
    revoke.add_argument("id", type=int)


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    actor = f"cli:{getpass.getuser()}"
    conn = await asyncpg.connect(settings.database.url)
    try:
        if args.tokens_command == "create":
            token_id, token = await tokens.create(conn, args.name, Role(args.role), actor)
            print(f"token {token_id} ({args.role}) for {args.name!r}; it is shown only now:")
            print(token)
        elif args.tokens_command == "list":
            for row in await tokens.listing(conn):
                print(json.dumps({**row.__dict__, "role": row.role.value}, default=str, ensure_ascii=False))
        elif args.tokens_command == "revoke":
            if not await tokens.revoke(conn, args.id, actor):
                print(f"no live token {args.id}")
                return 1
            print(f"token {args.id} revoked")
        return 0
    finally:
        await conn.close()
