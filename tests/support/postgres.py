"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests that claim PostgreSQL support.

initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user that
Debian's package creates. Set ALIGNBOT_REQUIRE_POSTGRES=1 (CI does) to fail instead of skip
when PostgreSQL is not installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sandbox.serving import free_port


def _bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_cluster_owner(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://alignbot@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://alignbot@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(_as_cluster_owner([str(self.bindir / "pg_ctl"), "-D",
                                          str(self.root / "data"), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(*, durable: bool = False) -> PostgresServer | None:
    """Start a fresh cluster, or None when PostgreSQL is not installed.

    Tests run it without syncing to disk (faster, and nothing outlives them); ``durable`` keeps
    PostgreSQL's defaults, every commit synced, as in production (benchmarks use it)."""
    bindir = _bindir()
    if bindir is None:
        return None
    root = Path(tempfile.mkdtemp(prefix="alignbot-pg-"))
    os.chmod(root, 0o777)
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    os.chmod(sockets, 0o777)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    run = lambda args: subprocess.run(  # noqa: E731
        _as_cluster_owner(args), check=True, capture_output=True, text=True, timeout=120)
    run([str(bindir / "initdb"), "-D", str(data), "-U", "alignbot", "--auth=trust",
         "-E", "UTF8", "--locale=C.UTF-8" if _has_c_utf8() else "--no-locale"])
    port = free_port()
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    run([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
         "-w", "-t", "60", "start"])
    return PostgresServer(bindir=bindir, root=root, port=port)


def _has_c_utf8() -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.lower()
    return "c.utf8" in out or "c.utf-8" in out
