"""Changes to accounts, the same from the CLI and the admins' pages: each in
one transaction with its audit row (who, what, to whom, from where).

Disabling an account or resetting its password ends its sessions at once; a
reset also lifts a lockout of its login. The last enabled admin cannot be
disabled or given a lower role (nobody could manage accounts from the web any
more; the CLI still can, and says so).
"""

from __future__ import annotations

import asyncpg

from agents.accounts import store
from agents.accounts.rules import AccountError, Draft
from agents.accounts.store import Account
from hotline.auth import audit, lockout, sessions
from hotline.auth.passwords import PROBLEMS, Passwords
from hotline.auth.roles import Role
from hotline.logs import get_logger

log = get_logger(__name__)


async def password_hash(passwords: Passwords, password: str) -> str:
    """The hash of a new password, or AccountError saying why it is refused.
    Callers hash before they take a database connection (hashing is slow)."""
    problem = passwords.problem(password)
    if problem is not None:
        en, zh = PROBLEMS[problem]
        raise AccountError(en.format(n=passwords.min_length), zh.format(n=passwords.min_length))
    return await passwords.hash(password)


async def create(conn: asyncpg.Connection, draft: Draft, hashed: str, actor: str,
                 address: str | None = None) -> Account:
    async with conn.transaction():
        if await store.login_taken(conn, draft.login):
            raise AccountError(f"login {draft.login!r} is taken", f"用户名 {draft.login} 已被使用")
        account_id = await store.insert(conn, draft, hashed, actor)
        await audit.record(conn, actor, "account.created", f"account:{account_id}", address, {
            "login": draft.login, "name": draft.name, "role": draft.role.value, "extension": draft.extension,
            "queues": {s.queue: s.penalty for s in draft.queues}})
        account = await store.by_id(conn, account_id)
    assert account is not None
    log.info("accounts.created", account=account.subject, login=account.login, role=account.role.value, actor=actor)
    return account


async def _locked(conn: asyncpg.Connection, account_id: int) -> Account:
    account = await store.by_id(conn, account_id, lock=True)
    if account is None:
        raise AccountError(f"no account {account_id}", "账户不存在")
    return account


async def _keep_an_admin(conn: asyncpg.Connection, account: Account) -> None:
    admins = await store.live_admins(conn)
    if admins == [account.id]:
        raise AccountError("this is the last enabled admin: make another admin first",
                           "这是唯一可用的管理员账户，请先设置另一名管理员")


async def set_disabled(conn: asyncpg.Connection, account_id: int, disabled: bool, actor: str,
                       address: str | None = None) -> Account:
    async with conn.transaction():
        account = await _locked(conn, account_id)
        if account.disabled == disabled:
            return account
        ended = 0
        if disabled:
            if account.role is Role.ADMIN:
                await _keep_an_admin(conn, account)
            await store.set_disabled(conn, account.id, True)
            ended = await sessions.end_all(conn, account.id)
        else:
            await store.set_disabled(conn, account.id, False)
        action = "account.disabled" if disabled else "account.enabled"
        await audit.record(conn, actor, action, account.subject, address,
                           {"login": account.login, **({"sessions_ended": ended} if disabled else {})})
    log.info("accounts." + ("disabled" if disabled else "enabled"), account=account.subject, actor=actor)
    return await store.by_id(conn, account_id) or account


async def reset_password(conn: asyncpg.Connection, account_id: int, hashed: str, actor: str,
                         address: str | None = None) -> Account:
    async with conn.transaction():
        account = await _locked(conn, account_id)
        await store.set_password_hash(conn, account.id, hashed)
        ended = await sessions.end_all(conn, account.id)
        await lockout.forget(conn, account.login)
        await audit.record(conn, actor, "account.password_reset", account.subject, address,
                           {"login": account.login, "sessions_ended": ended})
    log.info("accounts.password_reset", account=account.subject, actor=actor)
    return account


async def change_role(conn: asyncpg.Connection, account_id: int, role: Role, actor: str,
                      address: str | None = None) -> Account:
    async with conn.transaction():
        account = await _locked(conn, account_id)
        if account.role is role:
            return account
        if role is not Role.ADMIN and account.extension is None:
            raise AccountError(f"the {role.value} role needs an extension; this account has none",
                               "坐席和班长必须有分机号，此账户没有")
        if account.role is Role.ADMIN and not account.disabled:
            await _keep_an_admin(conn, account)
        await store.set_role(conn, account.id, role)
        await audit.record(conn, actor, "account.role_changed", account.subject, address,
                           {"login": account.login, "from": account.role.value, "to": role.value})
    log.info("accounts.role_changed", account=account.subject, actor=actor, role=role.value)
    return await store.by_id(conn, account_id) or account
