"""ociinspect/model/logs.py: module loggers that import nothing until logging is in use, then behave as
``logging.getLogger(name)`` (records name their caller; the library stays silent unless configured)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = str(Path(__file__).resolve().parents[2])


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": ROOT},
    )


def test_a_call_before_logging_is_imported_imports_nothing_and_prints_nothing() -> None:
    out = _run(
        "import sys\n"
        "from ociinspect.model.logs import DEBUG, get_logger\n"
        "log = get_logger('ociinspect.x')\n"
        "log.warning('w %s', 1); log.error('e'); log.debug('d'); log.info('i')\n"
        "print(log.isEnabledFor(DEBUG), 'logging' in sys.modules)\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"] and out.stderr == ""


def test_once_logging_is_configured_records_arrive_with_the_callers_place() -> None:
    out = _run(
        "import logging, sys\n"
        "from ociinspect.model.logs import DEBUG, get_logger\n"
        "log = get_logger('ociinspect.registry')\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.DEBUG,\n"
        "                    format='%(name)s|%(levelname)s|%(filename)s|%(funcName)s|%(message)s')\n"
        "def where():\n"
        "    log.debug('asked %s', 'x')\n"
        "    log.warning('careful')\n"
        "where()\n"
        "print(log.isEnabledFor(DEBUG))\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "ociinspect.registry|DEBUG|<string>|where|asked x",
        "ociinspect.registry|WARNING|<string>|where|careful",
        "True",
    ]


def test_without_configuration_the_library_stays_silent_as_a_library_should() -> None:
    """logging imported but not configured: a warning would reach logging's last-resort handler (stderr) were
    there no NullHandler on the ``ociinspect`` logger; the first resolved call adds one."""
    out = _run(
        "import logging\n"
        "from ociinspect.model.logs import get_logger\n"
        "get_logger('ociinspect.store').warning('dropping a cached index')\n"
        "print([type(h).__name__ for h in logging.getLogger('ociinspect').handlers])\n"
    )
    assert out.returncode == 0
    assert out.stderr == "" and out.stdout.strip() == "['NullHandler']"


@pytest.mark.registry
def test_the_cli_logs_with_v_and_imports_no_logging_without_it(seeded_registry: Any, tmp_path: Path) -> None:
    ref = f"docker://{seeded_registry.host}/fixtures/demo:latest"
    code = (
        "import sys\n"
        "from ociinspect.cli import main\n"
        f"code = main(sys.argv[1:] + ['inspect', '{ref}', '-f', 'json'])\n"
        "print('logging' in sys.modules, code, file=sys.stderr)\n"
    )
    env = {"PYTHONPATH": ROOT, "XDG_CACHE_HOME": str(tmp_path)}
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    loud = subprocess.run(
        [sys.executable, "-c", code, "-vv"], capture_output=True, text=True, env=env, timeout=60
    )
    assert quiet.stderr.strip().splitlines() == ["False 0"]
    assert loud.stderr.strip().splitlines()[-1] == "True 0"
    assert any(line.startswith("DEBUG ociinspect.registry: GET ") for line in loud.stderr.splitlines()), (
        loud.stderr
    )
