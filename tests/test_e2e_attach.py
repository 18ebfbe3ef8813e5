"""The whole path with `plldb attach` as a real subprocess, on the local cloud.

A copy of tests/test_stack is deployed and attached to, so tests can edit handler files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest

from plldb import limits, naming
from plldb.local.debuggers import MAIN_THREAD_NAME
from tests.harness.iam_audit import expect_refusal
from tests.harness.localcloud import TEST_STACK_DIR, TEST_STACK_NAME, LocalCloud, LocalCloudSettings
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.harness.localcloud_dap import DapClient
from tests.harness.moto_server import free_port
from tests.harness.pid_injection.sitecustomize import PORT_VARIABLE

pytestmark = pytest.mark.e2e

HELLO, ECHO = "HelloFunction", "EchoFunction"
INJECTION_HARNESS = Path(__file__).parent / "harness" / "pid_injection"
GRACE_SECONDS = 3.0
CONFIG_KEYS = ("Handler", "Runtime", "Timeout", "MemorySize", "Role", "Environment", "Layers")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("e2e") / "test_stack"
    shutil.copytree(TEST_STACK_DIR, copy, ignore=shutil.ignore_patterns(".aws-sam", "__pycache__"))
    return copy.resolve()


@pytest.fixture(scope="module")
def cloud(app: Path) -> Iterator[LocalCloud]:
    settings = LocalCloudSettings(grace_seconds=GRACE_SECONDS, app_dir=app)
    with LocalCloud(settings) as started, started.environ():
        yield started


@pytest.fixture(scope="module")
def lam(cloud: LocalCloud) -> Any:
    config = botocore.config.Config(max_pool_connections=64, read_timeout=120)
    return boto3.client("lambda", config=config)


@pytest.fixture
def original(cloud: LocalCloud, lam: Any) -> dict[str, Any]:
    """Each function's configuration and role policies before the test attaches."""
    return snapshot(cloud, lam)


def snapshot(cloud: LocalCloud, lam: Any) -> dict[str, Any]:
    """Each function's configuration, and its role's inline and attached policies.

    Names only, each from one list call: a policy listed and then read could be removed in
    between by a restore running meanwhile (the kill -9 test polls while it runs).
    """
    iam = boto3.client("iam")
    state: dict[str, Any] = {}
    for name in cloud.functions.values():
        config = lam.get_function_configuration(FunctionName=name)
        role = config["Role"].rsplit("/", 1)[1]
        attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        policies = (
            sorted(iam.list_role_policies(RoleName=role)["PolicyNames"]),
            sorted(policy["PolicyArn"] for policy in attached),
        )
        state[name] = ({k: config.get(k) for k in CONFIG_KEYS}, policies)
    return state


@pytest.fixture
def attach(cloud: LocalCloud, app: Path, original: dict) -> Iterator[Any]:
    """Start `plldb attach <args>` and wait until attached; always Ctrl-C'd at the end."""
    started: list[PlldbProcess] = []

    def start(*args: str, wait: bool = True, environment: dict | None = None) -> PlldbProcess:
        plldb = PlldbProcess(["attach", *args], app, {**cloud.environment, **(environment or {})})
        started.append(plldb)
        if wait:
            plldb.wait_for(ATTACHED_MARKER)
        return plldb

    yield start
    for plldb in started:
        plldb.interrupt()


def invoke(lam: Any, cloud: LocalCloud, logical_id: str, event: Any) -> tuple[Any, str | None]:
    response = lam.invoke(FunctionName=cloud.functions[logical_id], Payload=json.dumps(event))
    return json.loads(response["Payload"].read()), response.get("FunctionError")


def wait_restored(cloud: LocalCloud, lam: Any, expected: dict, timeout: float) -> float:
    """Seconds until every function is back to ``expected``; fails after ``timeout``."""
    started = time.monotonic()
    while snapshot(cloud, lam) != expected:
        if time.monotonic() - started > timeout:
            assert snapshot(cloud, lam) == expected
        time.sleep(0.25)
    return time.monotonic() - started


@pytest.fixture
def edit(app: Path) -> Iterator[Any]:
    """Rewrite a file of the app copy; the original content is put back afterwards."""
    saved: dict[Path, str] = {}

    def change(relative: str, old: str, new: str) -> None:
        path = app / relative
        text = path.read_text()
        saved.setdefault(path, text)
        assert old in text
        path.write_text(text.replace(old, new))
        later = time.time() + 2  # a new mtime even on coarse file systems
        os.utime(path, (later, later))

    yield change
    for path, text in saved.items():
        path.write_text(text)


def test_round_trip_reaches_the_local_handler_and_restores(
    cloud: LocalCloud, lam: Any, attach: Any, original: dict
) -> None:
    plldb = attach()
    instrumented = snapshot(cloud, lam)
    for config, _policies in instrumented.values():
        assert (
            config["Environment"]["Variables"][naming.ENV_EXEC_WRAPPER] == naming.WRAPPER_PATH
        )
    result, error = invoke(lam, cloud, HELLO, {"name": "Ada"})
    assert error is None
    assert result["greeting"] == "hello-from-env, Ada!" and result["layer"] == "common-layer:hello"
    plldb.wait_for("HelloFunction", timeout=10)  # plldb's own line for the invocation
    assert plldb.interrupt() == 0
    assert snapshot(cloud, lam) == original


def test_both_functions_answer_with_their_own_code(
    cloud: LocalCloud, lam: Any, attach: Any
) -> None:
    attach()
    hello, _ = invoke(lam, cloud, HELLO, {"name": "Bo"})
    echo, _ = invoke(lam, cloud, ECHO, {"name": "Bo"})
    assert (hello["module"], hello["utils"]) == ("hello.app", "hello-utils:BO")
    assert (echo["module"], echo["echo"]) == ("echo.app", {"name": "Bo"})
    assert echo["utils"].startswith("echo-utils:")


def test_edit_while_attached_changes_the_next_response_and_errors_keep_lambdas_format(
    cloud: LocalCloud, lam: Any, attach: Any, edit: Any
) -> None:
    plldb = attach()
    assert invoke(lam, cloud, ECHO, {})[0]["module"] == "echo.app"
    edit("functions/echo/app.py", 'MODULE = "echo.app"', 'MODULE = "echo.app, edited"')
    assert invoke(lam, cloud, ECHO, {})[0]["module"] == "echo.app, edited"
    edit(
        "functions/echo/app.py",
        "def handler(event, context):\n",
        "def handler(event, context):\n    raise ValueError(f'refused {event}' + ' because' * 20)\n",
    )
    error, kind = invoke(lam, cloud, ECHO, {"x": 1})
    assert kind == "Unhandled"
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "refused {'x': 1}" + " because" * 20
    line = plldb.wait_for("ValueError", timeout=10)  # plldb's line shows the error whole
    assert line.endswith("ValueError: refused {'x': 1}" + " because" * 20), line
    assert any("app.py" in line and "handler" in line for line in error["stackTrace"])


def test_a_result_that_grows_when_encoded_travels_through_the_bucket(
    cloud: LocalCloud, lam: Any, attach: Any
) -> None:
    """Under the inline limit as bytes, over the message size once JSON-escaped again."""
    quotes = '"' * 40_000  # the result body escapes each quote once, the message once more
    result_body = json.dumps({"echo": {"q": quotes}})
    assert len(result_body) < limits.INLINE_PAYLOAD_LIMIT
    assert len(json.dumps(result_body)) > limits.MESSAGE_SIZE
    attach()
    result, error = invoke(lam, cloud, ECHO, {"q": quotes})
    assert error is None, result
    assert result["echo"] == {"q": quotes}


def test_kill_9_leaves_the_stack_as_it_was(
    cloud: LocalCloud, lam: Any, attach: Any, original: dict
) -> None:
    plldb = attach()
    assert snapshot(cloud, lam) != original
    plldb.kill()
    waited = wait_restored(cloud, lam, original, timeout=GRACE_SECONDS + 30)
    print(f"restored {waited:.1f}s after kill -9 (grace {GRACE_SECONDS}s)")
    assert invoke(lam, cloud, HELLO, {"name": "after"})[0]["greeting"] == "hello-from-env, after!"


def test_second_attach_is_refused_and_ctrl_c_exits_0(
    cloud: LocalCloud, lam: Any, attach: Any, original: dict
) -> None:
    first = attach()
    second = attach("--debugpy", "--debugpy-port", str(free_port()), wait=False)
    assert second.wait(60) != 0
    assert f"stack {TEST_STACK_NAME!r} is already attached" in second.text()
    assert "--force" in second.text()
    # refused while planning: no table, no debugger, no launch.json before the refusal
    for started in ("Functions of", "debugpy listening", '"configurations"'):
        assert started not in second.text(), second.text()
    assert invoke(lam, cloud, ECHO, {"still": "served"})[0]["echo"] == {"still": "served"}
    assert first.interrupt() == 0
    assert snapshot(cloud, lam) == original


def test_50_concurrent_invocations_are_all_answered(
    cloud: LocalCloud, lam: Any, attach: Any
) -> None:
    attach()
    calls = [(HELLO if i % 2 else ECHO, i) for i in range(50)]

    def one(call: tuple[str, int]) -> tuple[Any, str | None]:
        return invoke(lam, cloud, call[0], {"name": f"n{call[1]}", "i": call[1]})

    started = time.monotonic()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, calls))
    print(f"50 concurrent invocations in {time.monotonic() - started:.1f}s")
    for (logical_id, i), (result, error) in zip(calls, results, strict=True):
        assert error is None, result
        if logical_id == HELLO:
            assert result["greeting"] == f"hello-from-env, n{i}!"
        else:
            assert result["echo"] == {"name": f"n{i}", "i": i}


def test_a_real_breakpoint_in_a_handler(
    cloud: LocalCloud, lam: Any, attach: Any, app: Path
) -> None:
    port = free_port()
    plldb = attach("--debugpy", "--debugpy-port", str(port))
    assert "frozen modules" not in plldb.text()  # pydevd's warning, silenced
    source = app / "functions" / "hello" / "app.py"
    line = source.read_text().splitlines().index("    return {") + 1
    debugger = DapClient("127.0.0.1", port)
    try:
        verified = debugger.attach({source: [line]})
        assert verified[source][0]["verified"], verified
        outcome: dict[str, Any] = {}
        invocation = threading.Thread(
            target=lambda: outcome.update(result=invoke(lam, cloud, HELLO, {"name": "Breakpoint"}))
        )
        invocation.start()
        stopped = debugger.wait_event("stopped", timeout=60)
        assert stopped["reason"] == "breakpoint"
        frame = debugger.top_frame(stopped["threadId"])
        assert Path(frame["source"]["path"]).resolve() == source
        assert frame["line"] == line
        assert debugger.locals_of(frame["id"])["name"] == "'Breakpoint'"
        assert invocation.is_alive(), "the invocation waits while the handler is stopped"
        debugger.request("continue", threadId=stopped["threadId"])
        invocation.join(60)
    finally:
        debugger.close()
    result, error = outcome["result"]
    assert error is None
    assert result["greeting"] == "hello-from-env, Breakpoint!"


HOLD_SECONDS = 60.0  # issue 12: a breakpoint held a minute leaves every other invocation answered


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def echo_seconds(lam: Any, cloud: LocalCloud, count: int) -> list[float]:
    """Wall times of ``count`` EchoFunction invocations, each answered correctly."""
    times = []
    for i in range(count):
        started = time.monotonic()
        result, error = invoke(lam, cloud, ECHO, {"i": i})
        times.append(time.monotonic() - started)
        assert error is None and result["echo"] == {"i": i}, result
    return times


def break_in_hello(lam: Any, cloud: LocalCloud, debugger: DapClient, app: Path) -> dict:
    """Attach with VS Code's default arguments, invoke HelloFunction, return its stop."""
    source = app / "functions" / "hello" / "app.py"
    line = source.read_text().splitlines().index("    return {") + 1
    assert debugger.attach({source: [line]})[source][0]["verified"]
    threading.Thread(  # never answered in time: plldb detaches while it is paused
        target=invoke, args=(lam, cloud, HELLO, {"name": "paused"}), daemon=True
    ).start()
    expect_refusal(  # the call audit: as in AWS, detach took the shim's rights mid-invocation
        "dynamodb:*",
        f"*:role/{TEST_STACK_NAME}-{HELLO}Role-*",
        why="the paused invocation outlives its session: its shim's calls after detach removed "
        "PLLDBShimAccess are refused",
    )
    stopped = debugger.wait_event("stopped", timeout=60)
    assert stopped["reason"] == "breakpoint"
    return stopped


def test_a_breakpoint_pauses_one_invocation_never_plldb(
    cloud: LocalCloud, lam: Any, attach: Any, app: Path, original: dict
) -> None:
    """Issue 12: with debugpy's defaults, other invocations are answered while a handler is
    paused, plldb's threads are not listed, and Ctrl-C detaches (exit 0, no traceback) with
    the handler still paused."""
    port = free_port()
    plldb = attach("--debugpy", "--debugpy-port", str(port))
    stopped = pause_and_interrupt(cloud, lam, app, plldb, port, original)
    assert not stopped.get("allThreadsStopped"), stopped


def test_debugpy_injected_by_pid_pauses_one_invocation_never_plldb(
    cloud: LocalCloud, lam: Any, attach: Any, app: Path, original: dict
) -> None:
    """The same with debugpy injected into a running plldb, as PyCharm's Attach to Process
    does (pydevd's default "suspend all threads" stays on here)."""
    plldb = attach()
    port = free_port()
    injected = subprocess.run(
        [sys.executable, "-m", "debugpy", "--listen", f"127.0.0.1:{port}", "--pid",
         str(plldb.pid)], capture_output=True, text=True, timeout=120,
    )
    if injected.returncode != 0:
        skip_unless_injection_works(injected.stdout + injected.stderr)
    stopped = pause_and_interrupt(cloud, lam, app, plldb, port, original)
    assert stopped.get("allThreadsStopped"), stopped


def test_debugpy_injected_later_on_the_main_thread_pauses_one_invocation_never_plldb(
    cloud: LocalCloud, lam: Any, attach: Any, app: Path, original: dict
) -> None:
    """Where gdb cannot inject, the code it would run in plldb runs there on a signal: pydevd
    arrives after plldb started, on the main thread, with "suspend all" (harness only)."""
    port = free_port()
    path = os.pathsep.join(filter(None, [str(INJECTION_HARNESS), os.environ.get("PYTHONPATH")]))
    plldb = attach(environment={"PYTHONPATH": path, PORT_VARIABLE: str(port)})
    os.kill(plldb.pid, signal.SIGUSR1)
    stopped = pause_and_interrupt(cloud, lam, app, plldb, port, original)
    assert stopped.get("allThreadsStopped"), stopped


def skip_unless_injection_works(output: str) -> None:
    """Skip where the machine forbids what injection needs (gdb, ptrace); fail otherwise."""
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    if scope.exists() and scope.read_text().strip() != "0":
        pytest.skip(f"ptrace is restricted (ptrace_scope {scope.read_text().strip()})")
    if shutil.which("gdb") is None:
        pytest.skip("gdb is not installed (apt-get install gdb): debugpy injects with it")
    for refusal in GDB_REFUSALS:
        if refusal in output:
            pytest.skip(f"gdb cannot run code in a process on this machine: {refusal}")
    pytest.fail(f"debugpy --pid failed:\n{output}")


# What gdb says where the kernel refuses it: ptrace denied, or its registers not writable
# (seen on virtual machines whose kernel and gdb disagree on the extended CPU state).
GDB_REFUSALS = ("Operation not permitted", "Couldn't write extended state status")


def pause_and_interrupt(
    cloud: LocalCloud, lam: Any, app: Path, plldb: PlldbProcess, port: int, original: dict
) -> dict:
    """Pause HelloFunction at a breakpoint, invoke EchoFunction for HOLD_SECONDS, Ctrl-C."""
    before = echo_seconds(lam, cloud, 5)
    debugger = DapClient("127.0.0.1", port)
    try:
        stopped = break_in_hello(lam, cloud, debugger, app)
        names = debugger.thread_names()  # the paused handler, and plldb's main thread
        assert len(names) == 2 and MAIN_THREAD_NAME in names, names
        assert any(name.startswith(f"plldb {HELLO} ") for name in names), names
        during: list[float] = []
        held_until = time.monotonic() + HOLD_SECONDS
        impatient = boto3.client(  # a stalled plldb fails the test in seconds, not minutes
            "lambda", config=botocore.config.Config(read_timeout=20, retries={"max_attempts": 1})
        )
        while time.monotonic() < held_until:
            during += echo_seconds(impatient, cloud, 1)
        print(f"Echo p50 {median(before) * 1000:.0f} ms before, "
              f"{median(during) * 1000:.0f} ms during a {HOLD_SECONDS:.0f} s pause "
              f"({len(during)} invocations)")
        assert median(during) < median(before) * 2 + 0.5, (before, during)
        assert plldb.interrupt() == 0, plldb.text()
    finally:
        debugger.close()
    assert "Traceback" not in plldb.text(), plldb.text()
    assert "detached: 2 function(s) restored" in plldb.text()
    assert snapshot(cloud, lam) == original
    return stopped


def test_wait_for_client_holds_invocations_until_a_debugger_attaches(
    cloud: LocalCloud, lam: Any, attach: Any
) -> None:
    port = free_port()
    plldb = attach("--debugpy", "--debugpy-port", str(port), "--wait-for-client")
    assert '"type": "debugpy"' in plldb.text()  # the launch.json for VS Code
    assert f'"port": {port}' in plldb.text()
    outcome: dict[str, Any] = {}
    invocation = threading.Thread(
        target=lambda: outcome.update(result=invoke(lam, cloud, ECHO, {"held": True}))
    )
    invocation.start()
    held = plldb.wait_for("waiting for a debugger", timeout=60)
    assert "EchoFunction" in held and f"to attach on 127.0.0.1:{port} (--wait-for-client)" in held
    invocation.join(3.0)
    assert invocation.is_alive(), "the invocation must wait for a debugger"
    debugger = DapClient("127.0.0.1", port)
    try:
        debugger.attach({})
        invocation.join(60)
    finally:
        debugger.close()
    result, error = outcome["result"]
    assert error is None
    assert result["echo"] == {"held": True}
