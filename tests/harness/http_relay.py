"""Relay one HTTP request verbatim to another server (the emulators' "everything else" path).

botocore sends every call of a service to one endpoint, so an emulator that serves a few
Lambda calls itself forwards all the others unchanged: this is that forwarding.
"""

from __future__ import annotations

import http.client
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}
# The Host header goes upstream unchanged: it is part of the SigV4 signature, which the
# moto launcher verifies under IAM enforcement.
_REQUEST_HOP_BY_HOP = HOP_BY_HOP - {"host"}


def relay(
    request: BaseHTTPRequestHandler, upstream_url: str, body: bytes, timeout: float
) -> tuple[int, bytes, dict[str, str]]:
    """Send ``request`` (method, path, headers, body) upstream; its status, body and headers."""
    target = urllib.parse.urlsplit(upstream_url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _REQUEST_HOP_BY_HOP}
    try:
        connection.request(request.command, request.path, body=body or None, headers=headers)
        response = connection.getresponse()
        data = response.read()
        out = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
        return response.status, data, out
    finally:
        connection.close()


class BusyHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server whose listen backlog takes a burst of concurrent SDK calls.

    The default backlog of 5 resets connections when 100 invocations arrive at once.
    """

    request_queue_size = 128
    daemon_threads = True
