"""People's passwords: argon2id hashes, made and checked off the event loop.

Argon2 is slow and memory-hard on purpose (64 MiB and ~0.1 s per hash with the
default ``[web]`` parameters), so hashing runs in worker threads, at most
:data:`SLOTS` at a time; a login flood waits for a slot (bounded: past
:data:`MAX_WAITING` waiting, :class:`PasswordsBusy`) instead of taking the
event loop or the machine's memory from the calls. A hash made with other
parameters than the settings' is rehashed when its password is next checked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from hotline.settings import WebSettings

SLOTS = 2              # hashes computed at once (this machine has 2 cores; the AMI reader needs one)
MAX_WAITING = 32       # logins waiting for a slot before new ones are turned away
MAX_LENGTH = 1024      # characters; longer input is refused before hashing


class PasswordsBusy(RuntimeError):
    """Too many logins waiting for a hash at once."""


@dataclass(frozen=True)
class Verdict:
    matches: bool
    rehashed: str | None = None    # a new hash with the current parameters, to store


class Passwords:
    def __init__(self, settings: WebSettings):
        self.hasher = PasswordHasher(time_cost=settings.argon2_time_cost,
                                     memory_cost=settings.argon2_memory_cost,
                                     parallelism=settings.argon2_parallelism)
        self.min_length = settings.password_min_length
        self._slots = asyncio.Semaphore(SLOTS)
        self._waiting = 0
        self._decoy: str | None = None

    def problem(self, password: str) -> str | None:
        """Why a new password is refused (a code for :data:`PROBLEMS`), or None."""
        if len(password) < self.min_length:
            return "too_short"
        if len(password) > MAX_LENGTH:
            return "too_long"
        if not password.isprintable() or password != password.strip():
            return "unprintable"
        return None

    async def hash(self, password: str) -> str:
        return await self._in_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> Verdict:
        """Does ``password`` match ``stored``? With ``stored`` None (no such
        account) a decoy hash is checked instead, so both take as long."""
        if len(password) > MAX_LENGTH:
            return Verdict(False)
        if stored is None:
            if self._decoy is None:
                self._decoy = await self.hash("decoy password, never matched")
            await self._in_thread(self._check, self._decoy, password)
            return Verdict(False)
        if not await self._in_thread(self._check, stored, password):
            return Verdict(False)
        if self.hasher.check_needs_rehash(stored):
            return Verdict(True, await self.hash(password))
        return Verdict(True)

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def _in_thread(self, fn, *args):
        if self._waiting >= MAX_WAITING:
            raise PasswordsBusy("too many password checks waiting")
        self._waiting += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(fn, *args)
        finally:
            self._waiting -= 1


PASSWORDS = web.AppKey("passwords", Passwords)    # the application's one hasher (its slots are shared)


# What a refused new password is told, in the operator's shell and on the web page.
PROBLEMS = {
    "too_short": ("the password is too short (at least {n} characters)", "密码太短（至少 {n} 个字符）"),
    "too_long": (f"the password is too long (at most {MAX_LENGTH} characters)",
                 f"密码太长（最多 {MAX_LENGTH} 个字符）"),
    "unprintable": ("the password has control characters or spaces at its ends",
                    "密码不能包含控制字符，首尾不能有空格"),
}
