"""Headless Chromium for the HTML tests: where it is, and the one set of flags that keeps it off the network.

As root, with no display and a closed network, Chromium needs ``--no-sandbox`` and must be told not to reach out
(background networking, component updates, sync); each test gives its own ``--user-data-dir``.
"""

from __future__ import annotations

import shutil

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_executable() -> str:
    """The Chromium binary; skips the test, with the reason, when it is not installed."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed: run the README's test command, which installs Debian's chromium")
    return exe
