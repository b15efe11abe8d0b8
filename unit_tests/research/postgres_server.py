"""A real, private PostgreSQL server for the tuning tests: Debian's ``postgresql`` binaries, a fresh
cluster in a temporary folder, listening on 127.0.0.1 only, with a password (scram-sha-256) so
that the storage URL's password path is exercised; stopped and removed afterwards, also on failure.

initdb refuses to run as root: as root, the cluster belongs to ``nobody`` and the server runs as it.
Where the binaries are absent the tests skip, unless ``FINRL_POSTGRES_REQUIRED`` is set (CI sets it
after installing the package), in which case they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "finrl"
DATABASE = "postgres"
UNPRIVILEGED = "nobody"


@dataclass(frozen=True)
class PostgresServer:
    port: int
    password: str

    @property
    def url(self) -> str:
        """The storage URL without its password: the tests pass that as a secret, as a deployment would."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{DATABASE}"


def postgres_bin() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name), reverse=True
    )
    return found[0].parent if found and (found[0].parent / "initdb").is_file() else None


def require_postgres() -> Path:
    binaries = postgres_bin()
    if binaries is None:
        if os.environ.get("FINRL_POSTGRES_REQUIRED"):
            pytest.fail("FINRL_POSTGRES_REQUIRED is set but no PostgreSQL server binaries are installed")
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin): apt-get install postgresql")
    return binaries


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(command: list[str]) -> list[str]:
    return ["runuser", "-u", UNPRIVILEGED, "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    binaries = require_postgres()
    root = Path(tempfile.mkdtemp(prefix="finrl-postgres-"))
    password = secrets.token_hex(12)
    data, log = root / "data", root / "server.log"
    (root / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, UNPRIVILEGED)
        shutil.chown(root / "pwfile", UNPRIVILEGED)
    started = False
    try:
        subprocess.run(
            _as_owner([str(binaries / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(root / "pwfile"),
                       "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=50 -c fsync=off"
        )
        subprocess.run(
            _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60",
                       "start"]),
            check=True, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        started = True
        yield PostgresServer(port, password)
    finally:
        if started:
            subprocess.run(
                _as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
