"""A throwaway PostgreSQL cluster for the tests (initdb + pg_ctl), or DATABASE_URL.

The cluster listens on a Unix socket in a temporary directory and on a free
loopback port; it is stopped and deleted when the test session ends.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class PostgresUnavailable(RuntimeError):
    pass


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if candidates:
        return candidates[-1]
    raise PostgresUnavailable(
        f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql) or set DATABASE_URL"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayCluster:
    """initdb refuses to run as root, so as root the cluster runs as the
    ``postgres`` system user (created by Debian's package)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self._as_user, *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(args[:2])} failed: {result.stderr or result.stdout}")

    def start(self) -> str:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.dir / "server.log"), "-w", "-t", "60", "start")
        return self.url

    def stop(self) -> None:
        try:
            self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[tuple[str, "ThrowawayCluster | None"]]:
    """(admin URL, cluster): ``DATABASE_URL`` if set (no cluster), else a throwaway
    cluster started for the block and stopped after it (the benches' server)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url, None
        return
    cluster = ThrowawayCluster()
    try:
        yield cluster.start(), cluster
    finally:
        cluster.stop()


def with_database(url: str, name: str) -> str:
    """The same server's URL for another database."""
    return f"{url.rpartition('/')[0]}/{name}"


async def create_migrated_database(admin_url: str, name: str) -> str:
    """Drop and create ``name`` on the server of ``admin_url``, apply every
    feature's migrations, and return its URL (the tests' template, the bench's DB)."""
    import asyncpg

    from hotline.db import migrate

    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    url = with_database(admin_url, name)
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return url
