"""A ThreadingHTTPServer for loopback test servers that does not print a traceback when a client hangs up.

Tests hang up on purpose (timeouts, resets, a client that stops reading); the standard server prints
"Exception occurred during processing of request" for each.  Anything else is still reported.
"""

from __future__ import annotations

import ssl
import sys
from http.server import ThreadingHTTPServer
from typing import Any

_EXPECTED = (ConnectionError, TimeoutError, ssl.SSLError)


class QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], _EXPECTED):
            return
        super().handle_error(request, client_address)
