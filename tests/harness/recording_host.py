"""A host that is not AWS: an HTTP server on 127.0.0.1 that records every request reaching it.

Attack tests point forged URLs, endpoints and proxies at it; that it saw nothing proves no
request left for the place an attacker chose.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def recording_host() -> Iterator[tuple[str, list[str]]]:
    """``(origin, seen)``: the server's ``http://127.0.0.1:<port>`` and the requests it got."""
    seen: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(f"{self.command} {self.path}")
            self.send_response(200)
            self.end_headers()

        do_PUT = do_POST = do_CONNECT = do_GET  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True, name="recording-host").start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()
