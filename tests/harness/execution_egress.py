"""Where a request comes from: inside a function's execution environment, or anywhere else.

AWS: "Lambda injects the source function ARN into the credentials context if the request is
an AWS API request that comes from within your execution environment" (AWS Lambda Developer
Guide, "Using source function ARN to control function access behavior"). The same
execution-role credentials used from a laptop carry no ``lambda:SourceFunctionArn``, so an
identity policy that requires the key (``Null: {"lambda:SourceFunctionArn": "false"}``)
allows a call made by the function's code and refuses the same call made with credentials
copied out of it. plldb's shim policy relies on that (docs/security.md).

The local cloud models the network path the way AWS sees it. Every function's execution
environment sends its traffic through an egress proxy of its own (``HTTP_PROXY``), which
runs inside the moto launcher and marks each request with :data:`HEADER`: a secret of the
launcher's process and the function's ARN. Only that mark gives a request the key:

* :func:`condition_context` is the launcher's view of the global condition keys of a
  request (``lambda:SourceFunctionArn`` when marked, ``aws:userid`` of a role session);
* :func:`refusal` evaluates a function role's request against the role's policies with
  those keys (tests/harness/iam_policy.py, conditions and policy variables included),
  which moto itself does not do, and says why AWS would refuse it.

Runs in the moto launcher's process (tests/harness/moto_launcher.py); helper-stack roles and
IAM users keep moto's checks (and the call audit's): their policies hold no such condition.
"""

from __future__ import annotations

import http.client
import json
import logging
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from plldb import naming
from tests.harness import iam_policy

log = logging.getLogger(__name__)

HEADER = "X-PLLDB-LocalCloud-Egress"
SOURCE_FUNCTION_KEY = "lambda:SourceFunctionArn"
FORWARD_TIMEOUT_S = 120.0  # only guards against a hung upstream
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade", "proxy-authorization", "content-length"}

_SECRET = secrets.token_hex(16)  # never leaves the launcher's process
_proxies: dict[str, ThreadingHTTPServer] = {}
_lock = threading.Lock()


def source_function(headers: Any) -> str | None:
    """The function ARN a request was marked with by its egress proxy, or None."""
    mark = headers.get(HEADER) if headers is not None else None
    if not mark:
        return None
    secret, _, arn = str(mark).partition(" ")
    return arn if secrets.compare_digest(secret, _SECRET) and arn else None


def proxy_url(function_arn: str) -> str:
    """The egress proxy of ``function_arn``'s execution environments (started once)."""
    with _lock:
        server = _proxies.get(function_arn)
        if server is None:
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(function_arn))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True,
                             name=f"egress {function_arn}").start()
            _proxies[function_arn] = server
    return f"http://127.0.0.1:{server.server_address[1]}"


def _handler_for(function_arn: str) -> type[BaseHTTPRequestHandler]:
    class Egress(_EgressHandler):
        source = function_arn

    return Egress


class _EgressHandler(BaseHTTPRequestHandler):
    """A forward proxy for plain-HTTP requests (an absolute URI in the request line)."""

    protocol_version = "HTTP/1.1"
    source = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("egress %s: " + format, self.source, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._forward()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET  # noqa: N815

    def _forward(self) -> None:
        target = urllib.parse.urlsplit(self.path)
        if target.scheme != "http" or not target.hostname:
            self.send_error(400, "the local cloud's egress proxy forwards absolute http:// URLs")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers[HEADER] = f"{_SECRET} {self.source}"
        path = target.path + (f"?{target.query}" if target.query else "")
        response, data = self._upstream_call(target.hostname, target.port or 80, path or "/", body, headers)
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _upstream_call(self, host: str, port: int, path: str, body: bytes | None,
                       headers: dict[str, str]) -> tuple[http.client.HTTPResponse, bytes]:
        """One request upstream, on a connection kept for this client connection (a function
        environment's SDK keeps its own alive: a new TCP connection per call would make the
        local cloud, not plldb, the slow part); a stale one is replaced once."""
        connections = self.__dict__.setdefault("_upstreams", {})
        for attempt in (1, 2):
            connection = connections.get((host, port))
            if connection is None:
                connection = http.client.HTTPConnection(host, port, timeout=FORWARD_TIMEOUT_S)
                connections[(host, port)] = connection
            try:
                connection.request(self.command, path, body=body, headers=headers)
                response = connection.getresponse()
                return response, response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                del connections[(host, port)]
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def finish(self) -> None:
        for connection in self.__dict__.get("_upstreams", {}).values():
            connection.close()
        super().finish()


# --------------------------------------------------------------------------- conditions


def condition_context(headers: Any, principal: dict[str, Any]) -> dict[str, str]:
    """The condition keys this request adds to the global ones: the source function when it
    came from an execution environment, and ``aws:userid`` of a role session."""
    context: dict[str, str] = {}
    source = source_function(headers)
    if source:
        context[SOURCE_FUNCTION_KEY] = source
    if principal.get("user_id"):
        context["aws:userid"] = principal["user_id"]
    return context


def refusal(principal: dict[str, Any], documents: list[dict[str, Any]],
            calls: list[tuple[str, str, dict[str, Any]]], context: dict[str, Any]) -> str | None:
    """Why AWS would refuse a function role's request (None: allowed, or not in scope).

    In scope: roles that are not the helper stack's (the debugged functions' roles, which
    hold the shim's policy while attached). A policy this evaluator cannot read leaves the
    decision to moto.
    """
    stack = principal.get("stack") or {}
    if principal.get("kind") != "role" or stack.get("name") == naming.HELPER_STACK_NAME:
        return None
    for action, resource, extra in calls:
        if action == "sts:GetCallerIdentity":
            continue
        request = iam_policy.Request(action, resource, {**context, **extra})
        try:
            outcome = iam_policy.evaluate(documents, request)
        except iam_policy.PolicyError:
            return None
        if not outcome.allowed:
            return f"{action} on {resource}: {outcome.decision.value}"
    return None


def as_documents(policies: list[Any]) -> list[dict[str, Any]]:
    """moto's policy documents (text or parsed) as dictionaries."""
    return [json.loads(p) if isinstance(p, str) else p for p in policies]
