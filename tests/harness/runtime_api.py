"""A Lambda Runtime API (2018-06-01) emulator on 127.0.0.1, one per function.

The runtime side is served exactly as Lambda serves it (``/runtime/invocation/next`` blocking
until an invocation is queued, ``/response``, ``/error``, ``/init/error``, with the real
headers and status codes); its fidelity is proven by running the real ``awslambdaric``
against it (tests/test_runtime_api.py). The invoking side is a Python API for tests
(:meth:`RuntimeApiEmulator.invoke`, :meth:`submit`, :meth:`ainvoke`) and, for a standalone
process, Lambda's own ``Invoke`` route (``POST /2015-03-31/functions/<name>/invocations``).

Deadlines are those of Lambda: the deadline starts when the runtime receives the invocation
from ``/next``; with no answer by then the invocation ends with status ``"timeout"`` and
:attr:`on_timeout` is called (the container launcher kills the runtime, as Lambda does).

Status codes for a wrong answer (documented by AWS as 400/403): an unknown request id gets
400 ``InvalidRequestID``; a second answer, an answer after the timeout, or an init error
after the first ``/next`` gets 403 ``InvalidStateTransition``; a response over the payload
limit gets 413 and the invocation fails with ``Function.ResponseSizeTooLarge``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import secrets
import select
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from plldb import runner

log = logging.getLogger(__name__)

API_PREFIX = "/2018-06-01/runtime"
# Lambda accepts a little more than 6 MB from the runtime (6 MB + 100 bytes).
RESPONSE_LIMIT = 6 * 1024 * 1024 + 100
REQUEST_LIMIT = 6 * 1024 * 1024
DEFAULT_QUEUE_WAIT_S = 30.0

_ANSWER = re.compile(rf"^{API_PREFIX}/invocation/(?P<id>[^/]+)/(?P<kind>response|error)$")
_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")

SUCCESS = "success"
ERROR = "error"
TIMEOUT = "timeout"


class InvocationRefused(ValueError):
    """An invocation Lambda itself would refuse (e.g. a request over 6 MB)."""


@dataclass
class InvocationResult:
    """What the invoker of one invocation observes, plus what the runtime did."""

    request_id: str
    status: str  # SUCCESS, ERROR or TIMEOUT
    body: bytes = b""
    error_type: str | None = None  # Lambda-Runtime-Function-Error-Type (or the platform's)
    content_type: str | None = None
    next_headers: dict[str, str] = field(default_factory=dict)  # sent to the runtime by /next
    answer_headers: dict[str, str] = field(default_factory=dict)  # sent by the runtime
    invocation_id: str | None = None
    invocation_id_echoed: bool | None = None  # None when no invocation id was sent
    deadline_ms: int | None = None
    submitted_at: float = 0.0  # time.monotonic() values
    dispatched_at: float | None = None
    answered_at: float | None = None
    answered_epoch_ms: int | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any] | None:
        return json.loads(self.body) if self.status != SUCCESS else None

    @property
    def duration_s(self) -> float | None:
        """Time from dispatch to the runtime until the answer."""
        if self.dispatched_at is None or self.answered_at is None:
            return None
        return self.answered_at - self.dispatched_at


@dataclass
class InitError:
    error_type: str | None
    body: bytes

    @property
    def error(self) -> dict[str, Any]:
        return json.loads(self.body)


class Invocation:
    """One invocation, from submission to its result (a handle for concurrent callers)."""

    def __init__(
        self, event: bytes, timeout_s: float, headers: dict[str, str], invocation_id: str | None
    ) -> None:
        self.event = event
        self.timeout_s = timeout_s
        self.request_id = headers[runner.H_REQUEST_ID]
        self.headers = headers
        self.result_record = InvocationResult(
            request_id=self.request_id,
            status="",
            invocation_id=invocation_id,
            submitted_at=time.monotonic(),
        )
        self._done = threading.Event()
        self.timer: threading.Timer | None = None

    def done(self) -> bool:
        return self._done.is_set()

    def finish(
        self,
        status: str,
        body: bytes,
        error_type: str | None = None,
        content_type: str | None = None,
        answer_headers: dict[str, str] | None = None,
    ) -> None:
        record = self.result_record
        record.status, record.body, record.error_type = status, body, error_type
        record.content_type = content_type
        record.answer_headers = answer_headers or {}
        record.answered_at = time.monotonic()
        record.answered_epoch_ms = int(time.time() * 1000)
        if self.timer is not None:
            self.timer.cancel()
        self._done.set()

    def result(self, wait_s: float | None = None) -> InvocationResult:
        """Block until the invocation ends; ``wait_s`` bounds the whole wait (queue included)."""
        if wait_s is None:
            wait_s = self.timeout_s + DEFAULT_QUEUE_WAIT_S
        if not self._done.wait(wait_s):
            raise TimeoutError(
                f"invocation {self.request_id} not finished after {wait_s:.1f}s "
                "(was the runtime ever started?)"
            )
        return self.result_record


def _error_json(message: str, error_type: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


def new_trace_id() -> str:
    return (
        f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
        f"Parent={secrets.token_hex(8)};Sampled=0"
    )


class RuntimeApiEmulator:
    """The Runtime API of one function, served on 127.0.0.1 from a thread."""

    def __init__(
        self,
        function_name: str = "function",
        region: str = "us-east-1",
        account_id: str = "123456789012",
        timeout_s: float = 3.0,
        port: int = 0,
    ) -> None:
        self.function_name = function_name
        self.function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.timeout_s = timeout_s  # used by the Invoke route
        self._port = port
        self._lock = threading.Condition()
        self._queue: deque[Invocation] = deque()
        self._in_flight: dict[str, Invocation] = {}
        self._finished: dict[str, Invocation] = {}
        self._stopping = False
        self._runtime_reached_next = False
        self._generation = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.init_errors: list[InitError] = []
        self.refused: list[tuple[str, int]] = []  # (path, status) of answers the API refused
        self.next_waiting = 0  # runtimes blocked in /next right now
        self.on_timeout: Callable[[InvocationResult], None] | None = None
        self.before_submit: Callable[[], None] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> RuntimeApiEmulator:
        emulator = self

        class Handler(_RuntimeApiHandler):
            pass

        Handler.emulator = emulator
        self._server = _Server(("127.0.0.1", self._port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name=f"runtime-api-{self.function_name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for invocation in [*self._queue, *self._in_flight.values()]:
                if invocation.timer is not None:
                    invocation.timer.cancel()

    def __enter__(self) -> RuntimeApiEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "emulator not started"
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        """The value of AWS_LAMBDA_RUNTIME_API."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    # --- invoking -----------------------------------------------------------------------

    def submit(
        self,
        event: bytes | str,
        timeout_s: float | None = None,
        *,
        request_id: str | None = None,
        trace_id: str | None = None,
        client_context: str | None = None,
        cognito_identity: str | None = None,
        tenant_id: str | None = None,
        send_invocation_id: bool = True,
        content_type: str = runner.JSON_CONTENT_TYPE,
    ) -> Invocation:
        """Queue an invocation and return its handle at once.

        ``client_context``/``cognito_identity`` are JSON texts, sent as is in the headers.
        """
        data = event.encode() if isinstance(event, str) else bytes(event)
        if len(data) > REQUEST_LIMIT:
            raise InvocationRefused(
                f"request payload of {len(data)} bytes is over the {REQUEST_LIMIT} byte limit"
            )
        headers = {
            "Content-Type": content_type,
            runner.H_REQUEST_ID: request_id or str(uuid.uuid4()),
            runner.H_FUNCTION_ARN: self.function_arn,
            runner.H_TRACE_ID: trace_id or new_trace_id(),
        }
        optional = {
            runner.H_CLIENT_CONTEXT: client_context,
            runner.H_COGNITO_IDENTITY: cognito_identity,
            runner.H_TENANT_ID: tenant_id,
        }
        headers.update({k: v for k, v in optional.items() if v is not None})
        invocation_id = str(uuid.uuid4()) if send_invocation_id else None
        if invocation_id:
            headers[runner.H_INVOCATION_ID] = invocation_id
        invocation = Invocation(
            data, self.timeout_s if timeout_s is None else timeout_s, headers, invocation_id
        )
        with self._lock:
            self._queue.append(invocation)
            self._lock.notify_all()
        if self.before_submit is not None:  # after queuing: a runtime that just ended restarts
            self.before_submit()
        return invocation

    def invoke(
        self,
        event: bytes | str,
        timeout_s: float | None = None,
        *,
        wait_s: float | None = None,
        **options: Any,
    ) -> InvocationResult:
        """Invoke and wait for the result (see :meth:`submit` for the options)."""
        return self.submit(event, timeout_s, **options).result(wait_s)

    async def ainvoke(
        self,
        event: bytes | str,
        timeout_s: float | None = None,
        *,
        wait_s: float | None = None,
        **options: Any,
    ) -> InvocationResult:
        """:meth:`invoke` for asyncio code: the wait runs in a worker thread."""
        invocation = self.submit(event, timeout_s, **options)
        return await asyncio.to_thread(invocation.result, wait_s)

    def wait_init_error(self, wait_s: float) -> InitError | None:
        deadline = time.monotonic() + wait_s
        with self._lock:
            while not self.init_errors and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            return self.init_errors[-1] if self.init_errors else None

    def wait_ready(self, wait_s: float) -> bool:
        """True once a runtime is blocked in /next (its init is over)."""
        deadline = time.monotonic() + wait_s
        with self._lock:
            while self.next_waiting == 0 and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            return self.next_waiting > 0

    def has_queued(self) -> bool:
        with self._lock:
            return bool(self._queue)

    # --- the runtime's process (called by the container launcher) --------------------------

    def runtime_started(self) -> int:
        """A new runtime process starts; returns its generation for :meth:`runtime_exited`."""
        with self._lock:
            self._runtime_reached_next = False
            self._generation += 1
            return self._generation

    def runtime_exited(self, returncode: int | None, generation: int) -> None:
        """The runtime process ended: its invocation fails with Runtime.ExitError, as in
        Lambda; if it never reached /next (init crash), so does every queued invocation."""
        with self._lock:
            if generation != self._generation:  # a newer runtime already took over
                return
            victims = list(self._in_flight.values())
            self._in_flight.clear()
            if not self._runtime_reached_next:
                victims += list(self._queue)
                self._queue.clear()
            self._finished.update({v.request_id: v for v in victims})
        reason = (
            f"exit status {returncode}"
            if returncode is not None and returncode >= 0
            else f"signal: {signal.Signals(-returncode).name.lower()}"
            if returncode
            else "exit"
        )
        for invocation in victims:
            body = _error_json(
                f"RequestId: {invocation.request_id} Error: Runtime exited with error: {reason}",
                "Runtime.ExitError",
            )
            invocation.finish(ERROR, body, "Runtime.ExitError", runner.JSON_CONTENT_TYPE)

    # --- Runtime API operations (called by the HTTP handler) -------------------------------

    def _next(self, client_alive: Callable[[], bool]) -> Invocation | None:
        """Block until an invocation is queued; None if the emulator stops or the runtime
        that asked is gone (a killed runtime must not swallow the next invocation)."""
        with self._lock:
            self._runtime_reached_next = True
            self.next_waiting += 1
            self._lock.notify_all()
            try:
                while True:
                    if self._stopping or not client_alive():
                        return None
                    if self._queue:
                        break
                    self._lock.wait(0.25)
                invocation = self._queue.popleft()
            finally:
                self.next_waiting -= 1
            self._in_flight[invocation.request_id] = invocation
            deadline_ms = int(time.time() * 1000 + invocation.timeout_s * 1000)
            invocation.headers[runner.H_DEADLINE_MS] = str(deadline_ms)
            record = invocation.result_record
            record.deadline_ms = deadline_ms
            record.dispatched_at = time.monotonic()
            record.next_headers = dict(invocation.headers)
            invocation.timer = threading.Timer(invocation.timeout_s, self._expire, (invocation,))
            invocation.timer.daemon = True
            invocation.timer.start()
            return invocation

    def _requeue(self, invocation: Invocation) -> None:
        """The runtime vanished while receiving the invocation: give it to the next one."""
        with self._lock:
            if self._in_flight.pop(invocation.request_id, None) is None:
                return
            if invocation.timer is not None:
                invocation.timer.cancel()
            self._queue.appendleft(invocation)
            self._lock.notify_all()

    def _expire(self, invocation: Invocation) -> None:
        with self._lock:
            if self._in_flight.pop(invocation.request_id, None) is None:
                return
            self._finished[invocation.request_id] = invocation
        body = _error_json(
            f"RequestId: {invocation.request_id} Error: Task timed out after "
            f"{invocation.timeout_s:.2f} seconds",
            "Sandbox.Timedout",
        )
        invocation.finish(TIMEOUT, body, "Sandbox.Timedout", runner.JSON_CONTENT_TYPE)
        log.info("invocation %s timed out", invocation.request_id)
        if self.on_timeout is not None:
            self.on_timeout(invocation.result_record)

    def _answer(
        self, request_id: str, kind: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        with self._lock:
            invocation = self._in_flight.get(request_id)
            if invocation is None:
                if request_id in self._finished:
                    return HTTPStatus.FORBIDDEN, _error_json(
                        "Invalid state transition: the invocation is already finished",
                        "InvalidStateTransition",
                    )
                return HTTPStatus.BAD_REQUEST, _error_json("Invalid request ID", "InvalidRequestID")
            del self._in_flight[request_id]
            self._finished[request_id] = invocation
        sent_id = invocation.result_record.invocation_id
        if sent_id is not None:
            invocation.result_record.invocation_id_echoed = (
                runner.header(headers, runner.H_INVOCATION_ID) == sent_id
            )
        content_type = runner.header(headers, "Content-Type")
        if kind == "response" and len(body) > RESPONSE_LIMIT:
            message = (
                f"Response payload size exceeded maximum allowed payload size "
                f"({RESPONSE_LIMIT} bytes)."
            )
            invocation.finish(
                ERROR,
                _error_json(message, "Function.ResponseSizeTooLarge"),
                "Function.ResponseSizeTooLarge",
                runner.JSON_CONTENT_TYPE,
                headers,
            )
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _error_json(
                f"Exceeded maximum allowed payload size ({RESPONSE_LIMIT} bytes).",
                "RequestEntityTooLarge",
            )
        if kind == "response":
            invocation.finish(SUCCESS, body, None, content_type, headers)
        else:
            invocation.finish(
                ERROR,
                body,
                runner.header(headers, runner.H_FUNCTION_ERROR_TYPE),
                content_type,
                headers,
            )
        return HTTPStatus.ACCEPTED, b'{"status":"OK"}'

    def _init_error(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        with self._lock:
            if self._in_flight:
                return HTTPStatus.FORBIDDEN, _error_json(
                    "Invalid state transition: init error during an invocation",
                    "InvalidStateTransition",
                )
            error = InitError(runner.header(headers, runner.H_FUNCTION_ERROR_TYPE), body)
            self.init_errors.append(error)
            victims = list(self._queue)
            self._queue.clear()
            self._finished.update({v.request_id: v for v in victims})
            self._lock.notify_all()
        for invocation in victims:  # Lambda returns the init error to waiting invokers
            invocation.finish(ERROR, body, error.error_type, runner.JSON_CONTENT_TYPE, headers)
        return HTTPStatus.ACCEPTED, b'{"status":"OK"}'


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A killed runtime resets its keep-alive connection: expected, not worth a trace."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("runtime api: connection from %s reset", client_address)
            return
        super().handle_error(request, client_address)


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    emulator: RuntimeApiEmulator

    def setup(self) -> None:
        """Headers and body go out in two writes: without TCP_NODELAY the body waits for the
        client's delayed ACK (~40 ms per request)."""
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("runtime api: " + format, *args)

    def _client_alive(self) -> bool:
        """False once the peer closed its end (a readable socket with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
        except (OSError, ValueError):
            return False

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> bool:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if not headers or "Content-Type" not in headers:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        try:
            self.end_headers()
            self.wfile.write(body)
            return True
        except (BrokenPipeError, ConnectionResetError):  # the runtime went away (killed)
            log.debug("runtime api: client gone before the reply to %s", self.path)
            return False

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path != f"{API_PREFIX}/invocation/next":
            self._send(HTTPStatus.NOT_FOUND, _error_json("Not found", "NotFound"))
            return
        invocation = self.emulator._next(self._client_alive)
        if invocation is None:  # the emulator is stopping or the runtime is gone
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _error_json("Shutting down", "Shutdown"))
            self.close_connection = True
            return
        if not self._send(HTTPStatus.OK, invocation.event, invocation.headers):
            self.emulator._requeue(invocation)

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        body = self._body()
        headers = dict(self.headers.items())
        answer = _ANSWER.match(self.path)
        invoke = _INVOKE.match(self.path)
        if answer:
            status, reply = self.emulator._answer(answer["id"], answer["kind"], body, headers)
        elif self.path == f"{API_PREFIX}/init/error":
            status, reply = self.emulator._init_error(body, headers)
        elif invoke:
            self._invoke(body)
            return
        else:
            status, reply = HTTPStatus.NOT_FOUND, _error_json("Not found", "NotFound")
        if status >= 400:
            self.emulator.refused.append((self.path, int(status)))
        self._send(status, reply)

    def _invoke(self, body: bytes) -> None:
        """Lambda's Invoke (RequestResponse) for a standalone emulator process."""
        try:
            result = self.emulator.invoke(body)
        except InvocationRefused as exc:
            self._send(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                _error_json(str(exc), "RequestTooLargeException"),
            )
            return
        except TimeoutError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, _error_json(str(exc), "ServiceException"))
            return
        headers = {
            "X-Amz-Executed-Version": "$LATEST",
            "X-Amzn-RequestId": result.request_id,
            "Content-Type": result.content_type or runner.JSON_CONTENT_TYPE,
        }
        if result.status != SUCCESS:
            headers["X-Amz-Function-Error"] = "Unhandled"
        self._send(HTTPStatus.OK, result.body, headers)


def main(argv: list[str] | None = None) -> None:
    """Serve one function: the Runtime API plus its Invoke route, and optionally its runtime.

    Prints one JSON line (``{"address": ..., "pid": ...}``) once ready; stops on SIGTERM/SIGINT.
    """
    from tests.harness.container import launch  # the launcher depends on this module

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--function-name", default="function")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--timeout", type=float, default=3.0, help="function timeout, seconds")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--code-dir", type=Path, help="launch a runtime for this code")
    parser.add_argument("--handler", default="app.handler")
    parser.add_argument("--layer-zip", type=Path, action="append", default=[])
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)

    emulator = RuntimeApiEmulator(
        args.function_name, args.region, timeout_s=args.timeout, port=args.port
    ).start()
    container = None
    if args.code_dir:
        environment = dict(item.split("=", 1) for item in args.env)
        container = launch(
            emulator,
            args.code_dir,
            args.handler,
            layer_zips=[p.read_bytes() for p in args.layer_zip],
            environment=environment,
            function_name=args.function_name,
            timeout_s=args.timeout,
            region=args.region,
            workdir=args.workdir,
        )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(
        json.dumps(
            {
                "address": emulator.address,
                "pid": os.getpid(),
                "runtime_pid": container.pid if container else None,
            }
        ),
        flush=True,
    )
    # A timed wait: the kernel may deliver SIGTERM to another thread, and a main thread
    # blocked for good in Event.wait() would never run the Python handler that sets stop.
    while not stop.wait(1.0):
        pass
    if container is not None:
        container.stop()
    emulator.stop()


if __name__ == "__main__":
    main()
