"""The Runtime API emulator and container launcher, proven against the real awslambdaric."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plldb import runner
from tests.harness.container import Container, launch
from tests.harness.fake_runtime.sample_functions import write_sample_code
from tests.harness.runtime_api import (
    ERROR,
    RESPONSE_LIMIT,
    SUCCESS,
    TIMEOUT,
    InvocationRefused,
    RuntimeApiEmulator,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample_code(tmp_path_factory.mktemp("code"))


@pytest.fixture(scope="module")
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator("sample", timeout_s=3.0) as emu:
        yield emu


@pytest.fixture(scope="module")
def app(emulator: RuntimeApiEmulator, code_dir: Path) -> Iterator[Container]:
    """One awslambdaric runtime serving app.handler for the whole module."""
    container = launch(emulator, code_dir, "app.handler", function_name="sample", memory_mb=256)
    assert emulator.wait_ready(15), container.logs()
    yield container
    container.stop()


@pytest.fixture
def function(code_dir: Path) -> Iterator[Callable[..., tuple[RuntimeApiEmulator, Container]]]:
    """Start a dedicated emulator + runtime for one handler (init failures end the runtime)."""
    started: list[tuple[RuntimeApiEmulator, Container]] = []

    def start(handler: str, **options: object) -> tuple[RuntimeApiEmulator, Container]:
        emu = RuntimeApiEmulator("sample", timeout_s=3.0).start()
        container = launch(emu, code_dir, handler, restart=False, **options)
        started.append((emu, container))
        return emu, container

    yield start
    for emu, container in started:
        container.stop()
        emu.stop()


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


# --- awslambdaric against the emulator --------------------------------------------------


def test_success_with_context_and_headers(emulator: RuntimeApiEmulator, app: Container) -> None:
    result = emulator.invoke(
        b'{"hello": "world"}', 5.0, request_id="req-1", trace_id="Root=1-abc;Sampled=0",
        client_context='{"custom": {"k": "v"}}',
        cognito_identity='{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}')

    assert result.status == SUCCESS, result.body
    assert result.content_type == "application/json"
    body = result.json
    assert body["event"] == {"hello": "world"}
    assert body["request_id"] == "req-1"
    assert body["arn"] == emulator.function_arn
    assert (body["function_name"], body["function_version"], body["memory"]) == ("sample", "$LATEST", "256")
    assert body["log_group"] == "/aws/lambda/sample"
    assert "[$LATEST]" in body["log_stream"]
    assert 4000 < body["remaining"] <= 5000
    assert body["identity"] == ["id-1", "pool-1"]
    assert body["client_custom"] == {"k": "v"}
    assert body["trace"] == "Root=1-abc;Sampled=0"
    assert result.next_headers[runner.H_DEADLINE_MS] == str(result.deadline_ms)
    assert result.invocation_id_echoed is True
    assert result.duration_s is not None and result.duration_s < 1.0


def test_invocation_without_invocation_id(emulator: RuntimeApiEmulator, app: Container) -> None:
    result = emulator.invoke(b"{}", send_invocation_id=False)

    assert result.status == SUCCESS
    assert result.invocation_id_echoed is None
    assert runner.H_INVOCATION_ID not in result.next_headers


def test_handler_error(emulator: RuntimeApiEmulator, app: Container) -> None:
    result = emulator.invoke(b'{"mode": "raise", "n": 7}', request_id="req-err")

    assert result.status == ERROR
    error = result.error
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "bad value 7"
    assert error["requestId"] == "req-err"
    assert [line.split(", in ")[1].split("\n")[0] for line in error["stackTrace"]] == ["handler", "helper"]
    assert result.invocation_id_echoed is True
    assert "[ERROR] ValueError: bad value 7" in app.logs()


def test_binary_result(emulator: RuntimeApiEmulator, app: Container) -> None:
    result = emulator.invoke(b'{"mode": "bytes"}')

    assert result.status == SUCCESS
    assert result.body == b"\x00\xffbinary"
    assert result.content_type == "application/unknown"


def test_result_that_is_not_json(emulator: RuntimeApiEmulator, app: Container) -> None:
    result = emulator.invoke(b'{"mode": "value", "name": "set"}', request_id="req-set")

    assert result.status == ERROR
    assert result.error == {"errorMessage": "Unable to marshal response: Object of type set is "
                            "not JSON serializable", "errorType": "Runtime.MarshalError",
                            "requestId": "req-set", "stackTrace": []}


def test_event_that_is_not_json(emulator: RuntimeApiEmulator, app: Container) -> None:
    result = emulator.invoke(b"{not json")

    assert result.status == ERROR
    assert result.error["errorType"] == "Runtime.UnmarshalError"
    assert result.error["errorMessage"].startswith("Unable to unmarshal input: Expecting property name")


def test_sequential_service_of_concurrent_invocations(emulator: RuntimeApiEmulator,
                                                      app: Container) -> None:
    handles = []
    threads = [threading.Thread(target=lambda i=i: handles.append(
        emulator.submit(json.dumps({"i": i}).encode()))) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [handle.result(10) for handle in handles]

    assert sorted(r.json["event"]["i"] for r in results) == list(range(6))
    spans = sorted((r.dispatched_at, r.answered_at) for r in results)
    assert all(prev[1] <= cur[0] for prev, cur in itertools.pairwise(spans)), "one at a time"


def test_round_trip_is_fast(emulator: RuntimeApiEmulator, app: Container) -> None:
    """No Nagle/delayed-ACK stalls: the shim's latency tests rely on a quick emulator."""
    results = [emulator.invoke(b"{}") for _ in range(20)]

    assert sorted(r.answered_at - r.submitted_at for r in results)[10] < 0.02


def test_async_invoke(emulator: RuntimeApiEmulator, app: Container) -> None:
    import asyncio

    async def two() -> list:
        return await asyncio.gather(emulator.ainvoke(b'{"a": 1}'), emulator.ainvoke(b'{"a": 2}'))

    results = asyncio.run(two())
    assert [r.json["event"]["a"] for r in results] == [1, 2]


def test_deadline_kills_runtime_and_next_invocation_cold_starts(
        emulator: RuntimeApiEmulator, app: Container) -> None:
    starts, pid = app.starts, app.pid
    began = time.monotonic()
    result = emulator.invoke(b'{"mode": "sleep", "seconds": 10}', 1.0)

    assert result.status == TIMEOUT
    assert 0.9 < time.monotonic() - began < 3.0
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in result.error["errorMessage"]
    after = emulator.invoke(b'{"after": true}')
    assert after.status == SUCCESS and after.json["event"] == {"after": True}
    assert app.starts == starts + 1 and app.pid != pid


def test_runtime_crash_fails_the_invocation(emulator: RuntimeApiEmulator, app: Container) -> None:
    result = emulator.invoke(b'{"mode": "exit", "code": 3}', request_id="req-exit")

    assert result.status == ERROR
    assert result.error == {"errorMessage": "RequestId: req-exit Error: Runtime exited with error: "
                            "exit status 3", "errorType": "Runtime.ExitError"}
    assert emulator.invoke(b"{}").status == SUCCESS


def test_invoke_route(emulator: RuntimeApiEmulator, app: Container) -> None:
    url = f"{emulator.url}/2015-03-31/functions/sample/invocations"
    status, headers, body = http("POST", url, b'{"x": 1}')
    assert status == 200 and json.loads(body)["event"] == {"x": 1}
    assert "X-Amz-Function-Error" not in headers

    status, headers, body = http("POST", url, b'{"mode": "raise"}')
    assert status == 200 and headers["X-Amz-Function-Error"] == "Unhandled"
    assert json.loads(body)["errorType"] == "ValueError"


@pytest.mark.parametrize(("handler", "error_type", "message"), [
    ("bad_import.handler", "Runtime.ImportModuleError",
     "Unable to import module 'bad_import': No module named 'module_that_does_not_exist'"),
    ("app.missing", "Runtime.HandlerNotFound", "Handler 'missing' missing on module 'app'"),
    ("nodot", "Runtime.MalformedHandlerName",
     "Bad handler 'nodot': not enough values to unpack (expected 2, got 1)"),
    ("broken_syntax.handler", "Runtime.UserCodeSyntaxError",
     "Syntax error in module 'broken_syntax': expected ':' (broken_syntax.py, line 1)"),
    ("raise_at_import.handler", "RuntimeError", "cannot start"),
])
def test_init_errors(function: Callable, handler: str, error_type: str, message: str) -> None:
    emu, container = function(handler)
    pending = emu.submit(b"{}")
    result = pending.result(15)
    init_error = emu.wait_init_error(5)

    assert init_error is not None, container.logs()
    assert init_error.error_type == error_type
    assert init_error.error["errorMessage"] == message
    assert init_error.error["requestId"] == ""
    assert result.status == ERROR and result.error == init_error.error
    assert container.wait(5) == 1


def test_exec_wrapper_from_layer_zip(function: Callable) -> None:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        script = zipfile.ZipInfo("bin/wrap")
        script.external_attr = 0o755 << 16
        archive.writestr(script, '#!/bin/sh\nexport WRAPPED_BY="$0 $1"\nexec "$@"\n')
        archive.writestr("python/layerlib.py", "VALUE = 'from layer'\n")
    emu, container = function("layered.handler", layer_zips=[layer.getvalue()],
                              environment={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/bin/wrap"})

    result = emu.invoke(b"{}", wait_s=15)

    assert result.status == SUCCESS, container.logs()
    assert result.json == {"layer": "from layer",
                           "wrapped": f"{container.opt_dir}/bin/wrap {sys.executable}"}
    assert container.env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bin/wrap"
    assert container.command[0] == str(container.opt_dir / "bin/wrap")


# --- the API itself, spoken to directly ------------------------------------------------


def _take_next(emu: RuntimeApiEmulator) -> tuple[str, dict[str, str], bytes]:
    status, headers, body = http("GET", f"{emu.url}/2018-06-01/runtime/invocation/next")
    assert status == 200
    return headers[runner.H_REQUEST_ID], headers, body


def test_next_blocks_until_an_invocation_is_queued() -> None:
    with RuntimeApiEmulator("raw") as emu:
        got: list = []
        reader = threading.Thread(target=lambda: got.append(_take_next(emu)))
        reader.start()
        assert emu.wait_ready(5)
        time.sleep(0.2)
        assert not got
        pending = emu.submit(b'{"q": 1}', 2.0, client_context='{"c": 1}', tenant_id="t-1")
        reader.join(5)
        request_id, headers, body = got[0]
        assert body == b'{"q": 1}' and request_id == pending.request_id
        assert headers["Content-Type"] == "application/json"
        assert headers[runner.H_CLIENT_CONTEXT] == '{"c": 1}'
        assert headers[runner.H_TENANT_ID] == "t-1"
        assert runner.H_COGNITO_IDENTITY not in headers
        assert abs(int(headers[runner.H_DEADLINE_MS]) - (time.time() * 1000 + 2000)) < 500


def test_wrong_answers_are_refused_like_lambda() -> None:
    with RuntimeApiEmulator("raw") as emu:
        base = f"{emu.url}/2018-06-01/runtime"
        pending = emu.submit(b"{}", 5.0)
        request_id, _, _ = _take_next(emu)

        status, _, body = http("POST", f"{base}/invocation/nope/response", b"1")
        assert (status, json.loads(body)["errorType"]) == (400, "InvalidRequestID")
        status, _, _ = http("POST", f"{base}/init/error", b"{}")
        assert status == 403
        status, _, _ = http("POST", f"{base}/invocation/{request_id}/error", b'{"errorType": "X"}',
                            {runner.H_FUNCTION_ERROR_TYPE: "Custom.Kind"})
        assert status == 202
        status, _, body = http("POST", f"{base}/invocation/{request_id}/response", b"1")
        assert (status, json.loads(body)["errorType"]) == (403, "InvalidStateTransition")
        assert http("GET", f"{base}/unknown")[0] == 404

        result = pending.result(1)
        assert (result.status, result.error_type) == (ERROR, "Custom.Kind")
        assert result.invocation_id_echoed is False
        assert [code for _, code in emu.refused] == [400, 403, 403]


def test_response_over_the_payload_limit() -> None:
    with RuntimeApiEmulator("raw") as emu:
        pending = emu.submit(b"{}", 5.0)
        request_id, _, _ = _take_next(emu)
        status, _, _ = http("POST", f"{emu.url}/2018-06-01/runtime/invocation/{request_id}/response",
                            b"x" * (RESPONSE_LIMIT + 1))
        assert status == 413
        assert pending.result(1).error["errorType"] == "Function.ResponseSizeTooLarge"


def test_request_over_the_payload_limit_is_refused() -> None:
    with RuntimeApiEmulator("raw") as emu, pytest.raises(InvocationRefused, match="limit"):
        emu.submit(b"x" * (6 * 1024 * 1024 + 1))


def test_result_wait_is_bounded_without_a_runtime() -> None:
    with RuntimeApiEmulator("raw") as emu, pytest.raises(TimeoutError, match="ever started"):
        emu.invoke(b"{}", 1.0, wait_s=0.3)


def test_standalone_process(code_dir: Path, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.runtime_api", "--function-name", "solo",
         "--code-dir", str(code_dir), "--handler", "app.handler", "--workdir", str(tmp_path),
         "--env", "WRAPPED_BY=none"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        ready = json.loads(process.stdout.readline())
        url = f"http://{ready['address']}/2015-03-31/functions/solo/invocations"
        status, _, body = http("POST", url, b'{"solo": 1}')
        assert status == 200
        assert json.loads(body)["event"] == {"solo": 1}
        assert json.loads(body)["wrapped"] == "none"
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_stop_ends_the_whole_process_group(code_dir: Path) -> None:
    """A wrapper that forks instead of exec'ing leaves a child: stop() ends it too."""
    import psutil

    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        script = zipfile.ZipInfo("bin/forking")
        script.external_attr = 0o755 << 16
        archive.writestr(script, '#!/bin/sh\n"$@" &\nwait\n')
    with RuntimeApiEmulator("group") as emu:
        container = launch(emu, code_dir, "app.handler", layer_zips=[layer.getvalue()],
                           environment={"AWS_LAMBDA_EXEC_WRAPPER": "/opt/bin/forking"})
        assert emu.invoke(b'{"alive": 1}', wait_s=15).status == SUCCESS
        processes = [psutil.Process(container.pid), *psutil.Process(container.pid).children()]
        assert len(processes) == 2
        workdir = container.workdir

        container.stop()

        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)
        assert not workdir.exists()
        assert "Traceback" not in container.logs()


def test_a_vanished_runtime_does_not_swallow_the_next_invocation() -> None:
    import socket

    with RuntimeApiEmulator("raw") as emu:
        dead = socket.create_connection(("127.0.0.1", emu.port))
        dead.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
        assert emu.wait_ready(5)
        dead.close()  # like a killed runtime blocked in /next
        time.sleep(0.1)
        pending = emu.submit(b'{"for": "the live one"}', 5.0)

        request_id, _, body = _take_next(emu)

        assert request_id == pending.request_id and body == b'{"for": "the live one"}'
