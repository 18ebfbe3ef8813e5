"""The local cloud's Lambda endpoint (``AWS_ENDPOINT_URL_LAMBDA``): runs functions like Lambda.

botocore sends every Lambda call to one endpoint, so this front serves ``Invoke`` of the
functions it runs and forwards every other call (and ``Invoke`` of the helper functions,
which the gateway emulator runs) verbatim to ``--upstream`` (the gateway emulator's Lambda
endpoint, which itself forwards to moto).

An ``Invoke`` reads the function's configuration from moto as it is now (the manager
changes it while a function is instrumented) and runs the invocation in a container of the
runtime emulator (tests/harness/container.py: real awslambdaric behind the exec wrapper,
layers unpacked into the container's /opt). As in Lambda:

* a configuration change (code, handler, environment, layers, timeout, memory) means new
  execution environments: containers of the old configuration finish the invocation they
  run and are stopped, the next invocation cold-starts a new one;
* concurrent invocations run in separate containers (up to ``--max-containers`` per
  function; more wait for a free one, within the function's timeout);
* the answer is Lambda's: 200 with the payload, ``X-Amz-Function-Error: Unhandled`` and the
  error document for a failure (``Sandbox.Timedout`` after the timeout), 202 for ``Event``,
  ``X-Amz-Log-Result`` for ``LogType=Tail``, 404 ``ResourceNotFoundException``.

Code and layer zips come from the local cloud's :class:`ContentStore` (moto never gives
code back), looked up by the ``CodeSha256`` moto reports.

Run as ``python -m tests.harness.localcloud_lambda --moto-url ... --upstream ...``; prints one
JSON line (``url``, ``pid``) when ready and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
import urllib.parse
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from tests.harness import container as containers
from tests.harness import runtime_api
from tests.harness.gateway import ACCOUNT_ID, function_name
from tests.harness.http_relay import BusyHTTPServer, relay
from tests.harness.localcloud_credentials import SESSION_SECONDS, RoleCredentials, fresh
from tests.harness.localcloud_stacks import ContentStore
from tests.harness.moto_server import FAKE_CREDENTIALS, REGION, MotoServer

log = logging.getLogger(__name__)

DEFAULT_MAX_CONTAINERS = 8
INIT_WAIT_S = 60.0  # a cold start (interpreter, awslambdaric, boto3) on a busy machine
_INVOKE = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
_LOG_TAIL_BYTES = 4096  # Lambda returns the last 4 KB of the log with LogType=Tail


class FunctionNotFound(LookupError):
    """No such function in moto (Lambda answers 404 ResourceNotFoundException)."""


class InvalidEntrypoint(RuntimeError):
    """The runtime's command (e.g. the exec wrapper) cannot be started."""


@dataclass(frozen=True)
class FunctionSpec:
    """Everything an execution environment is made from; a new value means new containers."""

    name: str
    handler: str
    runtime: str
    code_sha256: str
    layer_sha256s: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]
    timeout: int
    memory: int
    role: str  # the execution role, whose credentials the environment gets


class Slot:
    """One execution environment: a Runtime API emulator and the container running against it."""

    def __init__(
        self,
        spec: FunctionSpec,
        code_dir: Path,
        layer_zips: list[bytes],
        workdir: Path,
        extra_env: Mapping[str, str],
        credentials_expire: float = float("inf"),
    ) -> None:
        self.workdir = workdir
        self.credentials_expire = credentials_expire  # the role credentials it was given
        self.warm = False  # has run an invocation
        self.emulator = runtime_api.RuntimeApiEmulator(
            function_name=spec.name, region=REGION, timeout_s=spec.timeout
        ).start()
        try:
            self.container = containers.launch(
                self.emulator,
                code_dir,
                spec.handler,
                layer_zips=layer_zips,
                environment=dict(spec.environment),
                credentials=dict(extra_env),
                function_name=spec.name,
                memory_mb=spec.memory,
                timeout_s=spec.timeout,
                region=REGION,
                execution_env=f"AWS_Lambda_{spec.runtime}",
                python=sys.executable,
                workdir=workdir,
            )
        except OSError as exc:  # Lambda: Runtime.InvalidEntrypoint, "fork/exec ...: ..."
            self.emulator.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            path = str(exc.filename).replace(
                str(workdir / "opt"), "/opt", 1
            )  # as the function sees it
            raise InvalidEntrypoint(f"fork/exec {path}: {exc.strerror}") from exc
        except BaseException:
            self.emulator.stop()
            raise

    def log_tail(self) -> bytes:
        return self.container.logs().encode()[-_LOG_TAIL_BYTES:]

    def stop(self) -> None:
        self.container.stop()
        self.emulator.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class FunctionPool:
    """The execution environments of one function configuration."""

    def __init__(self, spec: FunctionSpec, new_slot: Any, max_size: int) -> None:
        self.spec = spec
        self._new_slot = new_slot
        self._max_size = max_size
        self._idle: list[Slot] = []
        self._size = 0
        self._retired = False
        self._lock = threading.Condition()

    def acquire(self, wait_s: float) -> Slot:
        """An idle environment, a new one (cold start), or the first one freed within wait_s."""
        deadline = time.monotonic() + wait_s
        with self._lock:
            while not self._idle and self._size >= self._max_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"no free execution environment for {self.spec.name} "
                        f"after {wait_s:.0f}s ({self._max_size} busy)"
                    )
                self._lock.wait(remaining)
            if self._idle:
                return self._idle.pop()
            self._size += 1
        try:
            return self._new_slot(self.spec)
        except BaseException:
            with self._lock:
                self._size -= 1
                self._lock.notify()
            raise

    def discard(self, slot: Slot) -> None:
        """Stop an acquired environment instead of returning it (e.g. stale credentials)."""
        with self._lock:
            self._size -= 1
            self._lock.notify()
        slot.stop()

    def release(self, slot: Slot) -> None:
        with self._lock:
            if not self._retired:
                self._idle.append(slot)
                self._lock.notify()
                return
            self._size -= 1
        slot.stop()

    def retire(self) -> None:
        """Stop idle environments now and busy ones when their invocation ends."""
        with self._lock:
            self._retired = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
        for slot in idle:
            slot.stop()


@dataclass
class InvokeResult:
    status: int
    body: bytes
    headers: dict[str, str]


class Invoker:
    """Runs invocations of the functions in moto, as Lambda would."""

    def __init__(
        self,
        moto_url: str,
        lambda_url: str,
        store: ContentStore,
        work_dir: Path,
        max_containers: int = DEFAULT_MAX_CONTAINERS,
        role_session_seconds: int = SESSION_SECONDS,
    ) -> None:
        session = boto3.Session(**_session_credentials(), region_name=REGION)
        config = botocore.config.Config(retries={"max_attempts": 3, "mode": "standard"})
        self._lambda = session.client("lambda", endpoint_url=moto_url, config=config)
        self._store = store
        self._work_dir = work_dir
        self._max_containers = max_containers
        # What a function's code reaches as "AWS": moto, and this endpoint for Lambda; each
        # execution environment adds its role's credentials (as Lambda does).
        self._extra_env = {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ENDPOINT_URL_LAMBDA": lambda_url,
        }
        self._role_credentials = RoleCredentials(moto_url, role_session_seconds)
        self._moto = MotoServer(port=urllib.parse.urlsplit(moto_url).port)
        self._pools: dict[str, FunctionPool] = {}
        self._layer_shas: dict[str, str] = {}
        self._lock = threading.Lock()
        self._code_lock = threading.Lock()

    def spec_of(self, name: str) -> FunctionSpec:
        """The function's configuration in moto, right now."""
        try:
            config = self._lambda.get_function_configuration(FunctionName=name)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise FunctionNotFound(name) from exc
            raise
        if config.get("PackageType", "Zip") != "Zip":
            raise ValueError(f"{name}: only zip functions can run in the local cloud")
        variables = (config.get("Environment") or {}).get("Variables") or {}
        return FunctionSpec(
            name=config["FunctionName"],
            handler=config["Handler"],
            runtime=config.get("Runtime", ""),
            code_sha256=config["CodeSha256"],
            layer_sha256s=tuple(
                self._layer_sha(layer["Arn"]) for layer in config.get("Layers") or []
            ),
            environment=tuple(sorted((k, str(v)) for k, v in variables.items())),
            timeout=int(config.get("Timeout") or 3),
            memory=int(config.get("MemorySize") or 128),
            role=config["Role"],
        )

    def _layer_sha(self, arn: str) -> str:
        """A layer version's CodeSha256 (a version never changes: cached)."""
        if arn not in self._layer_shas:
            parts = arn.split(":")
            layer = self._lambda.get_layer_version(LayerName=parts[6], VersionNumber=int(parts[7]))
            self._layer_shas[arn] = layer["Content"]["CodeSha256"]
        return self._layer_shas[arn]

    def _code_dir(self, sha: str) -> Path:
        """The function's deployed code, unpacked once per CodeSha256."""
        folder = self._work_dir / "code" / base64.b64decode(sha).hex()
        with self._code_lock:
            if not folder.exists():
                partial = folder.with_suffix(".partial")
                with zipfile.ZipFile(io.BytesIO(self._store.get(sha))) as archive:
                    archive.extractall(partial)
                partial.rename(folder)
        return folder

    def _new_slot(self, spec: FunctionSpec) -> Slot:
        workdir = self._work_dir / "containers" / uuid.uuid4().hex
        workdir.mkdir(parents=True)
        layers = [self._store.get(sha) for sha in spec.layer_sha256s]
        log.info("cold start of %s (%s)", spec.name, workdir.name)
        expires, credentials = self._role_credentials.issue(spec.role, spec.name)
        return Slot(
            spec,
            self._code_dir(spec.code_sha256),
            layers,
            workdir,
            {**self._extra_env, **self._egress(spec.name), **credentials},
            credentials_expire=expires,
        )

    def _egress(self, name: str) -> dict[str, str]:
        """The execution environment reaches AWS through its function's egress proxy, as in
        AWS, where its requests (and only those) carry lambda:SourceFunctionArn."""
        proxy = self._moto.egress(f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}")
        return {"HTTP_PROXY": proxy, "http_proxy": proxy}

    def _acquire(self, pool: FunctionPool, wait_s: float) -> Slot:
        """An environment whose role credentials outlast the invocation (else a new one).

        Lambda never runs an invocation with credentials about to expire; a warm environment
        whose credentials come within REFRESH_MARGIN_S of expiry is retired here (a new one
        has just been given fresh ones).
        """
        while True:
            slot = pool.acquire(wait_s)
            if not slot.warm or fresh(slot.credentials_expire):
                slot.warm = True
                return slot
            log.info("retiring an environment of %s: its role credentials expire", pool.spec.name)
            pool.discard(slot)

    def _pool(self, spec: FunctionSpec) -> FunctionPool:
        with self._lock:
            pool = self._pools.get(spec.name)
            if pool is not None and pool.spec == spec:
                return pool
            self._pools[spec.name] = FunctionPool(spec, self._new_slot, self._max_containers)
        if pool is not None:
            log.info("configuration of %s changed: new execution environments", spec.name)
            pool.retire()
        return self._pools[spec.name]

    def invoke(
        self, name: str, payload: bytes, client_context: str | None = None, log_tail: bool = False
    ) -> InvokeResult:
        """One synchronous invocation; the answer Lambda's Invoke API gives."""
        try:
            spec = self.spec_of(name)
        except FunctionNotFound:
            return _api_error(
                HTTPStatus.NOT_FOUND, "ResourceNotFoundException", f"Function not found: {name}"
            )
        pool = self._pool(spec)
        try:
            slot = self._acquire(pool, wait_s=spec.timeout + INIT_WAIT_S)
        except InvalidEntrypoint as exc:
            body = json.dumps(
                {
                    "errorType": "Runtime.InvalidEntrypoint",
                    "errorMessage": f"RequestId: {uuid.uuid4()} Error: {exc}",
                }
            )
            return InvokeResult(
                HTTPStatus.OK,
                body.encode(),
                {"X-Amz-Function-Error": "Unhandled", "Content-Type": "application/json"},
            )
        try:
            try:
                result = slot.emulator.invoke(
                    payload,
                    spec.timeout,
                    client_context=client_context,
                    wait_s=spec.timeout + INIT_WAIT_S,
                )
            except runtime_api.InvocationRefused as exc:
                return _api_error(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestTooLargeException", str(exc)
                )
            headers = {
                "X-Amz-Executed-Version": "$LATEST",
                "x-amzn-RequestId": result.request_id,
                "Content-Type": result.content_type or "application/json",
            }
            if result.status != runtime_api.SUCCESS:
                headers["X-Amz-Function-Error"] = "Unhandled"
            if log_tail:
                headers["X-Amz-Log-Result"] = base64.b64encode(slot.log_tail()).decode()
            return InvokeResult(HTTPStatus.OK, result.body, headers)
        finally:
            pool.release(slot)

    def invoke_async(self, name: str, payload: bytes) -> InvokeResult:
        """``InvocationType=Event``: accepted at once, run in the background."""
        try:
            self.spec_of(name)
        except FunctionNotFound:
            return _api_error(
                HTTPStatus.NOT_FOUND, "ResourceNotFoundException", f"Function not found: {name}"
            )
        threading.Thread(
            target=self.invoke, args=(name, payload), daemon=True, name=f"event-{name}"
        ).start()
        return InvokeResult(HTTPStatus.ACCEPTED, b"", {})

    def stop(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.retire()


def _session_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    }


def _api_error(status: int, code: str, message: str) -> InvokeResult:
    body = json.dumps({"Type": "User", "Message": message}).encode()
    return InvokeResult(
        status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": code}
    )


class LambdaFront:
    """The HTTP endpoint: Invoke of local functions here, everything else upstream."""

    def __init__(self, upstream_url: str, forwarded: set[str], port: int = 0) -> None:
        self.invoker: Invoker | None = (
            None  # set once the URL is known (the invoker's code uses it)
        )
        self.upstream_url = upstream_url
        self.forwarded = forwarded
        front = self

        class Handler(_FrontHandler):
            owner = front

        self._server = BusyHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="lambda-front"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LambdaFront:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self.invoker is not None:
            self.invoker.stop()


class _FrontHandler(BaseHTTPRequestHandler):
    owner: LambdaFront
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("lambda front: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._forward(self._body())

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        body = self._body()
        url = urllib.parse.urlsplit(self.path)
        match = _INVOKE.match(url.path)
        if match is None:
            self._forward(body)
            return
        name = function_name(urllib.parse.unquote(match["name"]))
        if name in self.owner.forwarded:
            self._forward(body)
            return
        invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        invoker = self.owner.invoker
        assert invoker is not None, "the front serves requests only once its invoker is set"
        try:
            if invocation_type == "Event":
                result = invoker.invoke_async(name, body)
            elif invocation_type == "DryRun":
                result = InvokeResult(HTTPStatus.NO_CONTENT, b"", {})
            else:
                context = self.headers.get("X-Amz-Client-Context")
                context = base64.b64decode(context).decode() if context else None
                tail = self.headers.get("X-Amz-Log-Type") == "Tail"
                result = invoker.invoke(name, body, client_context=context, log_tail=tail)
        except Exception as exc:  # reported to the caller as Lambda's ServiceException
            log.exception("invoke of %s failed", name)
            result = _api_error(
                HTTPStatus.INTERNAL_SERVER_ERROR, "ServiceException", f"{type(exc).__name__}: {exc}"
            )
        self._send(result.status, result.body, result.headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, body: bytes) -> None:
        self._send(*relay(self, self.owner.upstream_url, body, timeout=120))

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moto-url", required=True)
    parser.add_argument("--upstream", required=True, help="Lambda endpoint for everything else")
    parser.add_argument("--content-dir", required=True, type=Path)
    parser.add_argument("--work-dir", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--forward-function",
        action="append",
        default=[],
        help="a function whose Invoke goes upstream (repeatable)",
    )
    parser.add_argument("--max-containers", type=int, default=DEFAULT_MAX_CONTAINERS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    front = LambdaFront(args.upstream, set(args.forward_function), args.port)
    front.invoker = Invoker(
        args.moto_url, front.url, ContentStore(args.content_dir), args.work_dir, args.max_containers
    )
    front.start()
    print(json.dumps({"url": front.url, "pid": os.getpid()}), flush=True)
    # A timed wait: the kernel may deliver SIGTERM to another thread, and a main thread
    # blocked for good in Event.wait() would never run the Python handler that sets stop.
    while not stop.wait(1.0):
        pass
    front.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
