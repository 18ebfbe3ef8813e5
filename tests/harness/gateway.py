"""An API Gateway WebSocket API on 127.0.0.1, running the real handlers of plldb/lambdas.

What it imitates (and where it stops):

* WebSocket endpoint ``ws://127.0.0.1:<ws_port>/<stage>?sessionId=...``: on the HTTP upgrade
  the REQUEST authorizer runs with the event AWS sends (identity source: the ``sessionId``
  query parameter, missing -> 401 without calling it); Deny -> 403; then ``$connect`` runs
  (non-2xx -> the upgrade is refused); the connection exists (posts to it succeed) only once
  the upgrade completes, after ``connect_latency`` more seconds if set. A URL over 4,096
  characters is refused (414) before the authorizer runs. Messages are routed on ``$request.body.action``
  (only ``$default`` exists) with ``requestContext.authorizer`` = the authorizer's context.
  ``$disconnect`` runs when the client goes away, cleanly or not. Frames over 32 KB and
  messages over 128 KB close the connection with 1009; the idle timeout (counted on
  client messages) and the connection lifetime close it with 1001.
* HTTP endpoint ``http://127.0.0.1:<http_port>``:
  - the management API ``POST/GET/DELETE /<stage>/@connections/<id>`` (410 GoneException
    for unknown or closed connections, 413 over 128 KB), used by boto3's
    ``apigatewaymanagementapi`` with ``endpoint_url=<management_url>``;
  - a Lambda endpoint for ``AWS_ENDPOINT_URL_LAMBDA``: ``Invoke`` of a helper function runs
    its handler here (``Event`` -> 202 and a background thread); every other Lambda call is
    forwarded verbatim to moto, because botocore sends all Lambda calls to one endpoint.
  Both of the calls served here are refused (403) as AWS refuses them when the moto
  launcher enforces IAM: unsigned, badly signed, or not allowed by the signer's policies
  (tests/harness/emulator_authz.py).

Handlers run in this process and read their configuration from ``os.environ``: ``start()``
sets :meth:`Gateway.environment` there (and ``stop()`` puts the previous values back), as
the template sets a helper Lambda's environment.

In-process: ``with Gateway(GatewaySettings(moto_url=...)) as gateway: ...``.
As a process: ``python -m tests.harness.gateway --moto-url URL [--provision]`` prints one
JSON line (``websocket_url``, ``management_url``, ``lambda_url``, ``environment``) and runs
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import importlib
import json
import logging
import os
import random
import re
import secrets
import signal
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from plldb import limits, naming, protocol
from plldb.lambdas import common
from tests.harness import emulator_authz, gateway_environ
from tests.harness.http_relay import BusyHTTPServer, relay
from tests.harness.moto_server import FAKE_CREDENTIALS, REGION

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
URL_LIMIT = 4096  # API Gateway's quota on the length of a WebSocket API's URL, in characters
HANDSHAKE_SECONDS = 10.0  # after $connect, the upgrade must have completed by then

# The authorizer's identity sources, as in the template (tests/test_template.py checks):
# a connect without any of them gets 401 and the authorizer is not called.
IDENTITY_SOURCES = (
    "route.request.querystring.sessionId",
    f"route.request.header.{naming.IDENTITY_HEADER}",
)


@dataclass(frozen=True)
class HelperFunction:
    module: str
    timeout: int  # seconds, as in the template
    memory: int = 256
    role_arn: str | None = None  # its execution role; None: the process's credentials


# Function name -> handler module. Names are the emulator's; the real stack's are physical.
DEFAULT_FUNCTIONS = {
    "plldb-authorizer": HelperFunction("plldb.lambdas.authorizer", 10),
    "plldb-connect": HelperFunction("plldb.lambdas.connect", 29),
    "plldb-disconnect": HelperFunction("plldb.lambdas.disconnect", 29),
    "plldb-default": HelperFunction("plldb.lambdas.default", 29),
    "plldb-manager": HelperFunction("plldb.lambdas.manager", 900),
}
ROUTES = {
    "$connect": "plldb-connect",
    "$disconnect": "plldb-disconnect",
    "$default": "plldb-default",
}
AUTHORIZER = "plldb-authorizer"
MANAGER = "plldb-manager"


@dataclass
class GatewaySettings:
    moto_url: str
    layer_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{naming.LAYER_NAME}:1"
    payload_bucket: str = "plldb-core-infrastructure-us-east-1-123456789012"
    sessions_table: str = naming.SESSIONS_TABLE
    debugger_table: str = naming.DEBUGGER_TABLE
    stage: str = "prod"
    api_id: str = "plldbemu01"
    ws_port: int = 0  # 0: a free port
    http_port: int = 0
    idle_timeout: float = limits.IDLE_TIMEOUT_SECONDS
    max_lifetime: float = limits.CONNECTION_LIFETIME_SECONDS
    grace_seconds: float = limits.DEFAULT_GRACE_SECONDS
    default_timeout: int = limits.DEFAULT_DEBUG_TIMEOUT
    # the template's ShimAccessPolicy (tests/harness/gateway_setup.py provisions it)
    shim_policy_arn: str = f"arn:aws:iam::{ACCOUNT_ID}:policy/PLLDBShimAccess-{REGION}"
    functions: dict[str, HelperFunction] = field(default_factory=lambda: dict(DEFAULT_FUNCTIONS))
    # (role ARN, function name) -> credential variables, as Lambda puts them in a function's
    # environment (tests/harness/localcloud_credentials.py); None: the process's own.
    credentials: Callable[[str, str], dict[str, str]] | None = None
    # API Gateway delivers $disconnect on a best-effort basis: the share of them to lose
    # (0: none, 1: all), drawn from a generator seeded with drop_seed.
    drop_disconnect: float = 0.0
    drop_seed: int | None = None
    # Until the $connect integration has completed the connection does not exist (posts to
    # it get 410). With connect_latency, the upgrade completes only after a first post to
    # the new connection was refused (the adversarial order: the manager, started by
    # $connect, posts first), or after that many seconds at most.
    connect_latency: float = 0.0


@dataclass
class Invocation:
    """One run of a helper handler, kept for tests to inspect."""

    function: str
    event: Any
    result: Any = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)


class LambdaContext:
    """The attributes and method the Python runtime's context object has."""

    def __init__(self, function_name: str, timeout: int, memory: int) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"
        self.memory_limit_in_mb = str(memory)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class ClientConnection:
    connection_id: str
    websocket: ServerConnection
    authorizer: dict[str, Any]
    source_ip: str
    user_agent: str
    connected_at: float = field(default_factory=time.time)
    last_active: float = field(default_factory=time.monotonic)
    served: bool = False  # the upgrade completed and the connection is being served


def _connection_id() -> str:
    """API Gateway's ids look like ``L0SM9cOFvHcCIhw=``."""
    return base64.b64encode(secrets.token_bytes(10)).decode()


def _epoch_ms() -> int:
    return int(time.time() * 1000)


class Gateway:
    """The emulator; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.connections: dict[str, ClientConnection] = {}
        self.invocations: list[Invocation] = []
        self._lock = threading.Lock()
        self._background: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._server: Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._saved_environ: dict[str, str | None] = {}
        self._disconnects: set[asyncio.Task] = set()
        self.ws_port = settings.ws_port
        self.http_port = settings.http_port
        self.dropped_disconnects: list[str] = []  # connection ids whose $disconnect was lost
        self.refused_early: dict[str, asyncio.Event] = {}  # connecting id -> a post got 410
        self._drops = random.Random(settings.drop_seed)
        if settings.credentials is not None:
            gateway_environ.install()

    # --- public API ----------------------------------------------------------------------

    @property
    def websocket_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}/{self.settings.stage}"

    @property
    def lambda_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def management_url(self) -> str:
        return f"{self.lambda_url}/{self.settings.stage}"

    @property
    def connections_arn(self) -> str:
        s = self.settings
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{s.api_id}/{s.stage}/POST/@connections/*"

    def environment(self) -> dict[str, str]:
        """The helper Lambdas' environment: what the template sets, pointed at moto and here."""
        s = self.settings
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": s.moto_url,
            "AWS_ENDPOINT_URL_LAMBDA": self.lambda_url,
            naming.ENV_SESSIONS_TABLE: s.sessions_table,
            naming.ENV_DEBUGGER_TABLE: s.debugger_table,
            naming.ENV_MANAGER_FUNCTION: MANAGER,
            naming.ENV_LAYER_ARN: s.layer_arn,
            naming.ENV_MANAGEMENT_URL: self.management_url,
            naming.ENV_PAYLOAD_BUCKET: s.payload_bucket,
            naming.ENV_GRACE_SECONDS: str(s.grace_seconds),
            naming.ENV_DEFAULT_TIMEOUT: str(s.default_timeout),
            naming.ENV_CONNECTIONS_ARN: self.connections_arn,
            common.ENV_SHIM_POLICY_ARN: s.shim_policy_arn,
        }

    def start(self, timeout: float = 10.0) -> Gateway:
        self._start_http()
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._loop_thread = threading.Thread(
            target=self._run_loop, args=(started,), name="gateway-ws", daemon=True
        )
        self._loop_thread.start()
        if not started.wait(timeout):
            raise RuntimeError("gateway WebSocket server did not start")
        for name, value in self.environment().items():
            self._saved_environ[name] = os.environ.get(name)
            os.environ[name] = value
        log.info("gateway on %s, management %s", self.websocket_url, self.management_url)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Close every connection (running ``$disconnect``), wait for background handlers.

        ``timeout`` bounds the whole stop, not each step: handlers still running after it
        (daemon threads) are abandoned.
        """
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        if self._loop is not None and self._server is not None:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            try:
                future.result(left())
            except concurrent.futures.TimeoutError:
                log.warning("stopping anyway: $disconnect handlers still running")
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(left())
            if not self._loop.is_running():
                self._loop.close()
            self._loop = None
        try:
            self.wait_for_invocations(left())
        except TimeoutError as exc:  # e.g. a manager sleeping through its grace period
            log.warning("stopping anyway: %s", exc)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http_thread.join(left())
            self._http = None
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_for_invocations(self, timeout: float = 30.0) -> None:
        """Wait until every background (``Event``) invocation so far has finished."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [t for t in self._background if t.is_alive()]
            if not pending:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(pending)} helper invocation(s) still running")
            pending[0].join(remaining)

    def invocations_of(self, function: str) -> list[Invocation]:
        with self._lock:
            return [i for i in self.invocations if i.function == function]

    def close_connection(self, connection_id: str, code: int = 1000, reason: str = "") -> bool:
        """Close a connection from the server side, as DeleteConnection does."""
        client = self.connections.get(connection_id)
        if client is None or self._loop is None:
            return False
        asyncio.run_coroutine_threadsafe(client.websocket.close(code, reason), self._loop).result(
            10
        )
        return True

    # --- running handlers ----------------------------------------------------------------

    def invoke(self, function: str, event: Any) -> Invocation:
        """Run a helper handler synchronously, as Lambda would, and record it."""
        spec = self.settings.functions[function]
        invocation = Invocation(function, event)
        with self._lock:
            self.invocations.append(invocation)
        context = LambdaContext(function, spec.timeout, spec.memory)
        try:
            handler: Callable[[Any, Any], Any] = importlib.import_module(spec.module).handler
            with gateway_environ.overlay(self._credentials(function, spec)):
                invocation.result = handler(event, context)
        except Exception as exc:
            invocation.error = f"{type(exc).__name__}: {exc}"
            invocation.result = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            log.exception("%s raised", function)
        finally:
            invocation.finished.set()
        return invocation

    def _credentials(self, function: str, spec: HelperFunction) -> dict[str, str]:
        """The execution role's credentials for one invocation (fresh, as Lambda's are)."""
        if spec.role_arn is None or self.settings.credentials is None:
            return {}
        return self.settings.credentials(spec.role_arn, function)

    def invoke_async(self, function: str, event: Any) -> None:
        thread = threading.Thread(
            target=self.invoke, args=(function, event), name=f"invoke-{function}", daemon=True
        )
        with self._lock:
            self._background = [t for t in self._background if t.is_alive()] + [thread]
        thread.start()

    # --- WebSocket side ------------------------------------------------------------------

    def _run_loop(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        started.set()
        self._loop.run_forever()

    async def _serve(self) -> None:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self.ws_port,
            process_request=self._process_request,
            max_size=(limits.MESSAGE_LIMIT, limits.FRAME_LIMIT),
            ping_interval=None,  # API Gateway answers pings but does not send them
            server_header="plldb-gateway-emulator",
        )
        self.ws_port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        self._server.close(close_connections=True)
        await self._server.wait_closed()
        while self._disconnects:
            await asyncio.gather(*list(self._disconnects), return_exceptions=True)

    def _base_context(
        self, connection_id: str, route: str, event_type: str, request_headers: Headers
    ) -> dict:
        now_ms = _epoch_ms()
        return {
            "routeKey": route,
            "eventType": event_type,
            "extendedRequestId": secrets.token_urlsafe(12),
            "requestTime": datetime.now(timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "messageDirection": "IN",
            "stage": self.settings.stage,
            "connectedAt": now_ms,
            "requestTimeEpoch": now_ms,
            "identity": {
                "sourceIp": "127.0.0.1",
                "userAgent": request_headers.get("User-Agent", ""),
            },
            "requestId": secrets.token_urlsafe(12),
            "domainName": f"127.0.0.1:{self.ws_port}",
            "connectionId": connection_id,
            "apiId": self.settings.api_id,
        }

    @staticmethod
    def _headers(headers: Headers) -> tuple[dict[str, str], dict[str, list[str]]]:
        multi: dict[str, list[str]] = {}
        for name, value in headers.raw_items():
            multi.setdefault(name, []).append(value)
        return {name: values[-1] for name, values in multi.items()}, multi

    async def _process_request(
        self, websocket: ServerConnection, request: Request
    ) -> Response | None:
        """The upgrade: stage check, authorizer, ``$connect``; a Response refuses it."""
        url = urllib.parse.urlsplit(request.path)
        if len(f"wss://{request.headers.get('Host', '')}{request.path}") > URL_LIMIT:
            return websocket.respond(414, "Request-URI Too Long\n")
        if url.path.rstrip("/") != f"/{self.settings.stage}":
            return websocket.respond(403, "Forbidden\n")
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        if not _identity_sources_present(query, request.headers):
            return websocket.respond(401, "Unauthorized\n")
        connection_id = _connection_id()
        headers, multi_headers = self._headers(request.headers)
        request_context = self._base_context(connection_id, "$connect", "CONNECT", request.headers)
        s = self.settings
        authorizer_event = {
            "type": "REQUEST",
            "methodArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{s.api_id}/{s.stage}/$connect",
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {k: v[-1] for k, v in query.items()},
            "multiValueQueryStringParameters": query,
            "stageVariables": {},
            "requestContext": request_context,
        }
        authorization = await asyncio.to_thread(self.invoke, AUTHORIZER, authorizer_event)
        context = self._allowed_context(authorization.result)
        if authorization.error is not None:
            return websocket.respond(500, "Internal server error\n")
        if context is None:
            return websocket.respond(403, "Forbidden\n")
        connect_event = {
            "headers": headers,
            "multiValueHeaders": multi_headers,
            "queryStringParameters": authorizer_event["queryStringParameters"],
            "multiValueQueryStringParameters": query,
            "requestContext": {**request_context, "authorizer": context},
            "isBase64Encoded": False,
        }
        connect = await asyncio.to_thread(self.invoke, ROUTES["$connect"], connect_event)
        status = connect.result.get("statusCode", 200) if isinstance(connect.result, dict) else 200
        if connect.error is not None or not 200 <= int(status) < 300:
            return websocket.respond(500 if connect.error else int(status), "Connection refused\n")
        if s.connect_latency:
            refused = self.refused_early.setdefault(connection_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(refused.wait(), s.connect_latency)
        websocket.plldb_client = ClientConnection(
            connection_id=connection_id,
            websocket=websocket,
            authorizer=context,
            source_ip="127.0.0.1",
            user_agent=headers.get("User-Agent", ""),
        )
        asyncio.get_running_loop().call_later(
            HANDSHAKE_SECONDS, self._if_never_served, websocket.plldb_client, request.headers
        )
        return None

    def _if_never_served(self, client: ClientConnection, headers: Headers) -> None:
        """``$connect`` succeeded but the client vanished before the upgrade completed (e.g.
        killed): API Gateway holds the connection as open, so its ``$disconnect`` comes too."""
        if not client.served:
            log.info("%s never completed its upgrade: $disconnect", client.connection_id)
            self._schedule_disconnect(client, 1006, "client gone during the upgrade", headers)

    @staticmethod
    def _allowed_context(result: Any) -> dict[str, Any] | None:
        """The context API Gateway passes on, when the policy allows ``execute-api:Invoke``."""
        try:
            statements = result["policyDocument"]["Statement"]
            allowed = any(s["Effect"] == "Allow" for s in statements) and not any(
                s["Effect"] == "Deny" for s in statements
            )
        except (KeyError, TypeError):
            return None
        if not allowed:
            return None
        context = dict(result.get("context") or {})
        if any(isinstance(v, (dict, list)) for v in context.values()):
            log.error("authorizer context is not flat: API Gateway would fail the connection")
            return None
        return {**context, "principalId": result.get("principalId", "")}

    async def _handle(self, websocket: ServerConnection) -> None:
        client: ClientConnection = websocket.plldb_client
        client.served = True
        self.connections[client.connection_id] = client
        watchdog = asyncio.create_task(self._watch(client))
        close_code, close_reason = 1006, "abnormal closure"
        try:
            async for message in websocket:
                client.last_active = time.monotonic()
                self._route(client, message, websocket.request.headers)
        except ConnectionClosed:
            pass
        finally:
            watchdog.cancel()
            self.connections.pop(client.connection_id, None)
            if websocket.close_code is not None:
                close_code, close_reason = websocket.close_code, websocket.close_reason or ""
            self._schedule_disconnect(client, close_code, close_reason, websocket.request.headers)

    def _schedule_disconnect(
        self, client: ClientConnection, code: int, reason: str, headers: Headers
    ) -> None:
        task = asyncio.create_task(self._disconnect(client, code, reason, headers))
        self._disconnects.add(task)
        task.add_done_callback(self._disconnects.discard)

    def _route(self, client: ClientConnection, message: str | bytes, headers: Headers) -> None:
        """Route selection on ``$request.body.action``; ``$default`` when nothing matches."""
        route = "$default"
        if isinstance(message, str):
            try:
                action = json.loads(message).get("action")
                if isinstance(action, str) and action in ROUTES and not action.startswith("$"):
                    route = action
            except (ValueError, AttributeError):
                pass
        if isinstance(message, bytes):
            body, encoded = base64.b64encode(message).decode(), True
        else:
            body, encoded = message, False
        context = self._base_context(client.connection_id, route, "MESSAGE", headers)
        context["connectedAt"] = int(client.connected_at * 1000)
        context["messageId"] = secrets.token_urlsafe(12)
        context["authorizer"] = client.authorizer
        event = {"requestContext": context, "body": body, "isBase64Encoded": encoded}
        self.invoke_async(ROUTES[route], event)

    async def _disconnect(
        self, client: ClientConnection, code: int, reason: str, headers: Headers
    ) -> None:
        if self._drops.random() < self.settings.drop_disconnect:
            log.info(
                "dropped $disconnect of %s (best effort, as in API Gateway)", client.connection_id
            )
            self.dropped_disconnects.append(client.connection_id)
            return
        context = self._base_context(client.connection_id, "$disconnect", "DISCONNECT", headers)
        context["connectedAt"] = int(client.connected_at * 1000)
        context["disconnectStatusCode"] = code
        context["disconnectReason"] = reason
        context["authorizer"] = client.authorizer
        plain, multi = self._headers(headers)
        event = {
            "headers": plain,
            "multiValueHeaders": multi,
            "requestContext": context,
            "isBase64Encoded": False,
        }
        await asyncio.to_thread(self.invoke, ROUTES["$disconnect"], event)

    async def _watch(self, client: ClientConnection) -> None:
        """Close an idle connection, and any connection at the end of its lifetime."""
        opened = time.monotonic()
        while True:
            now = time.monotonic()
            idle_left = client.last_active + self.settings.idle_timeout - now
            life_left = opened + self.settings.max_lifetime - now
            if idle_left <= 0 or life_left <= 0:
                await client.websocket.close(1001, "Going away")
                return
            await asyncio.sleep(min(idle_left, life_left) + 0.01)

    def _post(self, connection_id: str, data: bytes) -> bool:
        """Send a management-API message; False when the connection is gone."""
        client = self.connections.get(connection_id)
        if client is None or self._loop is None:
            return False
        try:
            text: str | bytes = data.decode()
            pieces = protocol.fragments(text) if len(data) > limits.FRAME_LIMIT else text
        except UnicodeDecodeError:
            pieces = data
        future = asyncio.run_coroutine_threadsafe(client.websocket.send(pieces), self._loop)
        try:
            future.result(60)  # a bound against a hung loop only
        except ConnectionClosed:
            return False
        return True

    # --- HTTP side: management API, Lambda endpoint, forwarding to moto -----------------

    def _start_http(self) -> None:
        gateway = self

        class Handler(_HttpHandler):
            owner = gateway

        self._http = BusyHTTPServer(("127.0.0.1", self.http_port), Handler)
        self.http_port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, name="gateway-http", daemon=True
        )
        self._http_thread.start()


_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


class _HttpHandler(BaseHTTPRequestHandler):
    owner: Gateway
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(self.path).path
        s = self.owner.settings
        prefix = f"/{s.stage}/@connections/"
        if path.startswith(prefix):
            connection_id = urllib.parse.unquote(path[len(prefix) :])
            arn = emulator_authz.connection_arn(
                REGION, ACCOUNT_ID, s.api_id, s.stage, self.command, connection_id
            )
            if self._authorized("execute-api:ManageConnections", arn, body):
                self._management(connection_id, body)
            return
        match = _INVOKE.match(path)
        if match and self.command == "POST":
            name = function_name(urllib.parse.unquote(match.group(1)))
            if name in s.functions:
                arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
                if self._authorized("lambda:InvokeFunction", arn, body):
                    self._invoke(name, body)
                return
        self._forward(body)

    def _authorized(self, action: str, resource: str, body: bytes) -> bool:
        """Whether AWS would serve this request (its signature, its signer's policies: the
        moto launcher decides); when not, AWS's refusal is sent."""
        try:
            verdict = emulator_authz.authorize(
                self.owner.settings.moto_url,
                self.command,
                self.path,
                dict(self.headers.items()),
                body,
                action,
                resource,
            )
        except (OSError, ValueError) as exc:
            log.exception("could not authorize %s %s", self.command, self.path)
            self._error(500, "InternalServerErrorException", f"authorization failed: {exc}")
            return False
        if not verdict.allowed:
            log.info("refused %s on %s: %s", action, resource, verdict.message)
            self._error(403, verdict.error_code or "AccessDeniedException", verdict.message)
        return verdict.allowed

    # management API

    def _management(self, connection_id: str, body: bytes) -> None:
        gateway = self.owner
        client = gateway.connections.get(connection_id)
        if client is None:
            early = gateway.refused_early.get(connection_id)
            if early is not None and gateway._loop is not None:
                gateway._loop.call_soon_threadsafe(early.set)
            self._error(410, "GoneException", None)
            return
        if self.command == "POST":
            if len(body) > limits.MESSAGE_LIMIT:
                self._error(413, "PayloadTooLargeException", "Message too long")
            elif gateway._post(connection_id, body):
                self._send(200, b"", {})
            else:
                self._error(410, "GoneException", None)
        elif self.command == "GET":
            info = {
                "connectedAt": _iso(client.connected_at),
                "lastActiveAt": _iso(time.time() - (time.monotonic() - client.last_active)),
                "identity": {"sourceIp": client.source_ip, "userAgent": client.user_agent},
            }
            self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
        elif self.command == "DELETE":
            gateway.close_connection(connection_id, 1000, "")
            self._send(204, b"", {})
        else:
            self._error(405, "MethodNotAllowed", "Method not allowed")

    # Lambda Invoke of a helper function

    def _invoke(self, name: str, body: bytes) -> None:
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            self._error(
                400, "InvalidRequestContentException", "Could not parse request body into json"
            )
            return
        if invocation_type == "DryRun":
            self._send(204, b"", {})
        elif invocation_type == "Event":
            self.owner.invoke_async(name, event)
            self._send(202, b"", {})
        else:
            invocation = self.owner.invoke(name, event)
            headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
            if invocation.error is not None:
                headers["X-Amz-Function-Error"] = "Unhandled"
            self._send(200, json.dumps(invocation.result).encode(), headers)

    # everything else: moto

    def _forward(self, body: bytes) -> None:
        self._send(*relay(self, self.owner.settings.moto_url, body, timeout=60))

    def _error(self, status: int, code: str, message: str | None) -> None:
        body = json.dumps({"message": message}).encode()
        self._send(status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": code})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def function_name(identifier: str) -> str:
    """The name in a function name, partial ARN or ARN, with or without a qualifier."""
    parts = identifier.split(":")
    if identifier.startswith("arn:") and len(parts) >= 7:
        return parts[6]
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2]
    return parts[0]


def _identity_sources_present(query: dict[str, list[str]], headers: Headers) -> bool:
    """API Gateway answers 401 without calling the authorizer when one is missing or empty."""
    for source in IDENTITY_SOURCES:
        _, _, kind, name = source.split(".", 3)
        value = query.get(name, [""])[0] if kind == "querystring" else headers.get(name, "")
        if not value:
            return False
    return True


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- standalone process ---------------------------------------------------------------------


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moto-url", required=True, help="moto server endpoint")
    parser.add_argument("--port", type=int, default=0, help="WebSocket port (0: free port)")
    parser.add_argument("--http-port", type=int, default=0, help="management + Lambda port")
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--idle-timeout", type=float, default=limits.IDLE_TIMEOUT_SECONDS)
    parser.add_argument("--max-lifetime", type=float, default=limits.CONNECTION_LIFETIME_SECONDS)
    parser.add_argument("--grace-seconds", type=float, default=limits.DEFAULT_GRACE_SECONDS)
    parser.add_argument("--layer-arn", help="plldb layer version ARN (default: --provision's)")
    parser.add_argument(
        "--provision", action="store_true", help="create the tables, bucket and layer in moto first"
    )
    args = parser.parse_args(argv)
    # Before any thread starts, so that every thread inherits the mask: the signals wait for
    # sigwait below. With a Python handler instead, the kernel may deliver SIGTERM to another
    # thread, and a main thread blocked in Event.wait then never runs the handler (the gateway
    # ignored SIGTERM that way, under load). The emulator starts no child process, which
    # would inherit the mask too.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = GatewaySettings(
        moto_url=args.moto_url,
        ws_port=args.port,
        http_port=args.http_port,
        stage=args.stage,
        idle_timeout=args.idle_timeout,
        max_lifetime=args.max_lifetime,
        grace_seconds=args.grace_seconds,
    )
    if args.provision:
        from tests.harness.gateway_setup import provision

        os.environ.update({**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": args.moto_url})
        resources = provision()
        settings.layer_arn = resources.layer_arn
        settings.payload_bucket = resources.payload_bucket
    if args.layer_arn:
        settings.layer_arn = args.layer_arn
    gateway = Gateway(settings).start()
    print(json.dumps(_announcement(gateway)), flush=True)
    signal.sigwait(STOP_SIGNALS)
    gateway.stop(timeout=5)
    return 0


def _announcement(gateway: Gateway) -> dict[str, Any]:
    return {
        "websocket_url": gateway.websocket_url,
        "management_url": gateway.management_url,
        "lambda_url": gateway.lambda_url,
        "environment": gateway.environment(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
