"""The audit database password never has to be on the command line, and never appears in output (issue 10 §5).

A private PostgreSQL cluster (Debian's postgresql, loopback, a free port) that *requires* a password over TCP
(scram-sha-256), so each test can fail: without a password the connection is refused; with ``PGPASSFILE`` (a
0600 ``.pgpass``), ``PGPASSWORD`` or a ``PGSERVICEFILE`` service it works; a wrong password given in the URL
(``user:pass@`` or ``?password=``) is never echoed in the error.  Stopped by its PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.postgres import running_postgres
from reliability.helpers import run_cli

PASSWORD = "s3cret-Pw_42"


@pytest.fixture(scope="module")
def pg_with_password() -> Iterator[tuple[int, Path]]:
    """(port, work dir) of a cluster whose superuser ``postgres`` needs :data:`PASSWORD` over TCP."""
    with running_postgres(password=PASSWORD) as cluster:
        yield cluster


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No password from the environment or from ~/.pgpass unless a test sets one."""
    for name in (
        "PGPASSWORD",
        "PGPASSFILE",
        "PGSERVICEFILE",
        "PGSERVICE",
        "OCIINSPECT_AUDIT_DB",
        "PGSYSCONFDIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PGSYSCONFDIR", str(tmp_path))
    return tmp_path


def url(port: int, creds: str = "postgres", query: str = "") -> str:
    return f"postgresql://{creds}@127.0.0.1:{port}/postgres{query}"


def test_without_a_password_the_server_refuses(pg_with_password: tuple[int, Path], clean_env: Path) -> None:
    port, _ = pg_with_password
    run = run_cli("audit", "runs", "--db", url(port))
    assert run.code != 0 and "password" in run.err.lower(), run  # proves the tests below can fail


def test_pgpassfile_gives_the_password(pg_with_password: tuple[int, Path], clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    port, _ = pg_with_password
    passfile = clean_env / "pgpass"
    passfile.write_text(f"127.0.0.1:{port}:*:postgres:{PASSWORD}\n")
    passfile.chmod(0o600)  # libpq ignores a pgpass readable by others
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    run = run_cli("audit", "runs", "--db", url(port))
    assert run.code == 0, run
    assert PASSWORD not in run.out + run.err


def test_pgpassword_and_a_service_file_give_the_password(
    pg_with_password: tuple[int, Path], clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _ = pg_with_password
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    assert run_cli("audit", "runs", "--db", url(port)).code == 0
    monkeypatch.delenv("PGPASSWORD")
    service = clean_env / "pg_service.conf"
    service.write_text(
        f"[audit]\nhost=127.0.0.1\nport={port}\nuser=postgres\ndbname=postgres\npassword={PASSWORD}\n"
    )
    service.chmod(0o600)
    monkeypatch.setenv("PGSERVICEFILE", str(service))
    run = run_cli("-vv", "audit", "runs", "--db", "postgresql:///?service=audit")
    assert run.code == 0, run
    assert PASSWORD not in run.out + run.err


@pytest.mark.parametrize(
    ("creds", "query"),
    [
        ("postgres:wrong-Pw_1", ""),
        ("postgres", "?password=wrong-Pw_1"),
        ("postgres:wrong-Pw_1", "?sslmode=disable"),
    ],
)
def test_a_wrong_password_in_the_url_is_never_printed(
    pg_with_password: tuple[int, Path], clean_env: Path, creds: str, query: str
) -> None:
    port, _ = pg_with_password
    run = run_cli("-vv", "audit", "runs", "--db", url(port, creds, query))
    assert run.code != 0 and run.code != 70, run
    assert "wrong-Pw_1" not in run.out + run.err, run
    assert "REDACTED" in run.err, run


def test_a_libpq_key_value_string_is_redacted(clean_env: Path) -> None:
    """Not a URL: taken as an SQLite path; the error quoting it must not show the password."""
    target = str(clean_env / "no-such-dir" / "x") + " host=db password=hunter2"
    run = run_cli("audit", "runs", "--db", target)
    assert run.code not in (0, 70) and "hunter2" not in run.out + run.err, run
