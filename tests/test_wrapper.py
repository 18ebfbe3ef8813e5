"""The exec wrapper of the runtime layer, run by the container harness with the real layer zip.

Without a debugging session the wrapper must be invisible: same results as a function
without it, and no process of its own (the runtime process *is* the python command, its
parent is the launcher). A chained original wrapper still runs; a shim that cannot start
hands over to the original runtime.
"""

from __future__ import annotations

import io
import os
import stat
import textwrap
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil
import pytest

from plldb import naming
from plldb.cloud import packaging
from tests.harness.container import Container, launch
from tests.harness.runtime_api import SUCCESS, RuntimeApiEmulator

pytestmark = pytest.mark.timeout(60)

HANDLER_CODE = textwrap.dedent(
    """
    import json
    import os
    import time


    def handler(event, context):
        action = event.get("action")
        if action == "fail":
            raise ValueError(f"failed on purpose: {event.get('n')}")
        if action == "sleep":
            time.sleep(event["seconds"])
        if action == "big":
            return "x" * event["size"]
        return {
            "event_size": len(json.dumps(event)),
            "request_id": context.aws_request_id,
            "function_name": context.function_name,
            "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 60000,
            "mark": os.environ.get("CHAINED_MARK"),
            "pid": os.getpid(),
        }
    """
)
CHAINED_WRAPPER = '#!/bin/sh\nexport CHAINED_MARK="chained:$#"\nexec "$@"\n'

SHIM_FILES = {
    "plldb-shim/wrapper",
    "plldb-shim/plldb/__init__.py",
    "plldb-shim/plldb/naming.py",
    "plldb-shim/plldb/limits.py",
    "plldb-shim/plldb/protocol.py",
    "plldb-shim/plldb/routing.py",
    "plldb-shim/plldb/route_table.py",
    "plldb-shim/plldb/runner/__init__.py",
    "plldb-shim/plldb/runner/context.py",
    "plldb-shim/plldb/runner/encoding.py",
    "plldb-shim/plldb/runner/faults.py",
    "plldb-shim/plldb/runner/running.py",
    "plldb-shim/plldb/layer/__init__.py",
    "plldb-shim/plldb/layer/cloud.py",
    "plldb-shim/plldb/layer/config.py",
    "plldb-shim/plldb/layer/in_place.py",
    "plldb-shim/plldb/layer/loop.py",
    "plldb-shim/plldb/layer/mirror.py",
    "plldb-shim/plldb/layer/polling.py",
    "plldb-shim/plldb/layer/runtime_api.py",
    "plldb-shim/plldb/layer/shim.py",
    "plldb-shim/plldb/layer/sigv4.py",
    "plldb-shim/plldb/layer/stage.py",
    "plldb-shim/plldb/layer/table_reader.py",
}


def write_function(folder: Path) -> Path:
    """A function's code folder: ``app.handler`` plus an executable chained wrapper."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(HANDLER_CODE)
    chained = folder / "chained_wrapper"
    chained.write_text(CHAINED_WRAPPER)
    chained.chmod(0o755)
    return folder


def start_function(
    emulator: RuntimeApiEmulator, code: Path, workdir: Path, environment: Mapping[str, str]
) -> Container:
    """Launch the function with the real layer zip and wait until the runtime is in /next."""
    container = launch(
        emulator,
        code,
        "app.handler",
        layer_zips=[packaging.layer_zip()],
        environment=environment,
        workdir=workdir,
        timeout_s=10,
    )
    assert emulator.wait_ready(20), container.logs()
    return container


@pytest.fixture
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator("wrapped-function") as api:
        yield api


@pytest.fixture
def code(tmp_path: Path) -> Path:
    return write_function(tmp_path / "code")


def assert_is_runtime_process(container: Container, timeout: float = 10.0) -> None:
    """The launched process was replaced by the python command: no wrapper, no shim.

    The exec happens a moment after the launch (and the emulator may still report the
    previous runtime as ready), so the command line is polled until it changes, bounded.
    """
    process = psutil.Process(container.pid)
    deadline = time.monotonic() + timeout
    while process.cmdline()[1:] != container.command[-1:] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.cmdline()[1:] == container.command[-1:], process.cmdline()
    assert Path(process.cmdline()[0]).name.startswith("python")
    assert process.ppid() == os.getpid()
    assert process.children(recursive=True) == []


def outcomes(emulator: RuntimeApiEmulator) -> list[tuple[str, object, str | None]]:
    """Success, handler error and large result, in a comparable form."""
    results = [
        emulator.invoke('{"action": "echo", "n": 1}', request_id="req-1"),
        emulator.invoke('{"action": "fail", "n": 2}', request_id="req-2"),
        emulator.invoke('{"action": "big", "size": 200000}', request_id="req-3"),
    ]
    comparable = []
    for result in results:
        body = result.json
        if isinstance(body, dict):
            body.pop("pid", None)
        comparable.append((result.status, body, result.error_type))
    return comparable


def test_layer_zip_holds_exactly_the_shim() -> None:
    archive = zipfile.ZipFile(io.BytesIO(packaging.layer_zip()))
    assert set(archive.namelist()) == SHIM_FILES
    wrapper = archive.getinfo("plldb-shim/wrapper")
    assert (wrapper.external_attr >> 16) & 0o777 == 0o755
    assert naming.WRAPPER_PATH == "/opt/plldb-shim/wrapper"


def test_no_session_is_identical_to_no_wrapper_and_adds_no_process(
    emulator: RuntimeApiEmulator, code: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "container"  # the same task root for both runs: same stack traces
    with start_function(emulator, code, workdir, {}) as plain:
        assert_is_runtime_process(plain)
        expected = outcomes(emulator)
    with start_function(
        emulator, code, workdir, {naming.ENV_EXEC_WRAPPER: naming.WRAPPER_PATH}
    ) as wrapped:
        assert wrapped.command[0].endswith("plldb-shim/wrapper")
        assert_is_runtime_process(wrapped)
        assert outcomes(emulator) == expected
    assert expected[0][0] == SUCCESS and expected[1][1]["errorType"] == "ValueError"


def test_no_session_runs_the_chained_original_wrapper(
    emulator: RuntimeApiEmulator, code: Path, tmp_path: Path
) -> None:
    environment = {
        naming.ENV_EXEC_WRAPPER: naming.WRAPPER_PATH,
        naming.ENV_ORIGINAL_WRAPPER: str(tmp_path / "container" / "task" / "chained_wrapper"),
    }
    with start_function(emulator, code, tmp_path / "container", environment) as container:
        assert_is_runtime_process(container)
        result = emulator.invoke('{"action": "echo"}')
    assert result.status == SUCCESS
    assert result.json["mark"] == "chained:2"  # it got the runtime's two arguments


def test_shim_that_cannot_start_hands_over_to_the_runtime(
    emulator: RuntimeApiEmulator, code: Path, tmp_path: Path
) -> None:
    environment = {  # a session, but none of the tables the manager would also set
        naming.ENV_EXEC_WRAPPER: naming.WRAPPER_PATH,
        naming.ENV_SESSION_ID: "6f1c2a44-93a4-4c4b-9d0e-1d6a1f2b3c4d",
    }
    with start_function(emulator, code, tmp_path / "container", environment) as container:
        assert_is_runtime_process(container)
        result = emulator.invoke('{"action": "echo"}')
        logs = container.logs()
    assert result.status == SUCCESS
    assert "debugging disabled (ShimConfigError: missing environment variable(s): " in logs
    assert naming.ENV_SESSIONS_TABLE in logs
    assert "starting the function's own runtime" in logs


def test_wrapper_without_arguments_fails_with_usage(tmp_path: Path) -> None:
    import subprocess

    wrapper = Path(packaging.PACKAGE_DIR) / "layer" / "wrapper"
    assert wrapper.stat().st_mode & stat.S_IXUSR
    result = subprocess.run([str(wrapper)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert "expected the runtime command line" in result.stderr
