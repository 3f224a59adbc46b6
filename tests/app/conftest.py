"""Fixtures for the application frame: a real PostgreSQL server and small aiohttp servers."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bindir() -> str | None:
    for name in ("pg_ctl", "initdb"):
        found = shutil.which(name)
        if found and os.path.exists(os.path.join(os.path.dirname(os.path.realpath(found)), "postgres")):
            return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return os.path.dirname(candidates[0]) if candidates else None


@dataclass
class PgServer:
    """A PostgreSQL server started for the test session on 127.0.0.1."""

    bindir: str
    datadir: str
    port: int
    as_user: list[str]

    @property
    def dsn(self) -> str:
        return f"postgresql://flowpump@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        cmd = [*self.as_user, os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} -F -c fsync=off"
        self._ctl("-o", opts, "-l", os.path.join(self.datadir, "server.log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def create_database(self) -> str:
        """A fresh database; returns its DSN."""
        import asyncpg

        name = "t_" + uuid.uuid4().hex[:12]

        async def create() -> None:
            con = await asyncpg.connect(self.dsn)
            try:
                await con.execute(f"create database {name}")
            finally:
                await con.close()

        asyncio.run(create())
        return f"postgresql://flowpump@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Start PostgreSQL (initdb into a temporary directory, pg_ctl start on a free port)."""
    pytest.importorskip("asyncpg", reason="asyncpg is not installed: pip install 'flowpump[postgres]'")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    datadir = tempfile.mkdtemp(prefix="flowpump-pg-")
    as_user: list[str] = []
    if os.geteuid() == 0:
        # The server refuses to run as root: run it as the postgres user (made by the Debian package).
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root and `runuser` is missing: cannot start PostgreSQL as another user")
        shutil.chown(datadir, "postgres", "postgres")
        as_user = [runuser, "-u", "postgres", "--"]
    initdb = [*as_user, os.path.join(bindir, "initdb"), "-D", datadir, "-U", "flowpump", "--auth=trust"]
    subprocess.run([*initdb, "-E", "UTF8", "--no-sync"], check=True, capture_output=True, timeout=120)
    server = PgServer(bindir, datadir, free_port(), as_user)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(datadir, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """A fresh database on the session's server."""
    return pg_server.create_database()


@contextlib.asynccontextmanager
async def _http_server(routes: dict[str, object]) -> AsyncIterator[str]:
    """Serve aiohttp handlers (path -> handler) on 127.0.0.1; yields the base URL."""
    from aiohttp import web

    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)  # type: ignore[arg-type]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def http_server() -> object:
    """``async with http_server({"/path": handler}) as base_url: ...`` (aiohttp on 127.0.0.1)."""
    pytest.importorskip("aiohttp", reason="aiohttp is not installed: pip install 'flowpump[http]'")
    return _http_server


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()


async def until(condition: Callable[[], object], within: float = 20.0, step: float = 0.001) -> None:
    """Wait until ``condition()`` is true (polled; each turn lets the loop run other tasks)."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            msg = f"condition not met within {within}s"
            raise TimeoutError(msg)
        await asyncio.sleep(step if step else 0)
