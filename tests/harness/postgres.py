"""A private PostgreSQL cluster for the audit tests: Debian's postgresql, a free loopback port, stopped by its PID.

One helper for every test that needs a real server (trust auth for the shard tests, a password-only cluster for
the credential tests), so starting, waiting and stopping are written once.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.registry import free_port


@contextlib.contextmanager
def running_postgres(
    *, password: str | None = None, max_connections: int = 100
) -> Iterator[tuple[int, Path]]:
    """``(port, work dir)`` of a fresh cluster whose superuser is ``postgres``: trusted over TCP, or (with
    ``password``) requiring it (scram-sha-256; local socket connections stay trusted).  Skips the test, with the
    reason, when postgresql or psycopg is missing."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.skip("postgresql not installed: run tests/run.sh, which installs Debian's postgresql")
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install -e '.[test]'")
    bindir = Path(initdb[-1]).parent
    work = Path(tempfile.mkdtemp(prefix="ociinspect-pg-"))
    auth = ["--auth=trust"]
    if password is not None:
        (work / "pw").write_text(password + "\n")
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={work / 'pw'}"]
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        for path in work.iterdir():
            shutil.chown(path, "postgres")
        shutil.chown(work, "postgres")
    port = free_port()
    pid = None
    try:
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(work / "data"), "-U", "postgres", *auth, "-E", "UTF8",
             "--no-sync"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        options = f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections={max_connections}"
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(work / "data"), "-l", str(work / "log"), "-o", options,
             "-w", "-t", "30", "start"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        pid = int((work / "data" / "postmaster.pid").read_text().split()[0])
        yield port, work
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # fast shutdown
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
