"""Mirror mode on the laptop (attach --mirror): a copy of an invocation the cloud answered.

A real :class:`Attachment` with a real executor runs a small handler written to disk; its
:class:`~plldb.session.connection.Connection` (the one attach uses) is connected to a real
WebSocket server standing in for the helper stack, which posts the messages as the shim
would and records everything plldb sends back (for a mirror: nothing). What the user reads
is the console output; captures are real files, and `plldb replay` of one runs in a
subprocess.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from plldb import console, runner
from plldb import protocol as p
from plldb.capture import mirror, records
from plldb.cloud.aws import AwsContext
from plldb.cloud.helper_stack import HelperStack
from plldb.project.discovery import discover
from plldb.project.model import LocalFunction
from plldb.session.attach import Attachment
from plldb.session.connection import Connection
from plldb.session.plan import AttachOptions, AttachPlan
from tests.test_invoke import SHOP, plldb

SESSION = "0f8fad5b-d9cb-469f-a165-70867728950e"
OTHER_SESSION = "6ec0bd7f-11c0-43da-975e-2a8ad9ebae0b"
FUNCTION = "shop-HelloFunction-3C4D"
ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ASIAFUNCTION", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"}
HANDLER = """import json, os, threading, time
from pathlib import Path

GATE = threading.Event()  # released by the test: a stand-in for a breakpoint


def handler(event, context):
    with open(Path(os.environ["MARKS"], context.aws_request_id), "a") as marks:
        marks.write(json.dumps({
            "remaining": context.get_remaining_time_in_millis(), "arn": context.invoked_function_arn,
            "tenant": context.tenant_id, "table": os.environ.get("TABLE"),
            "endpoint": os.environ.get("AWS_ENDPOINT_URL"), "key": os.environ.get("AWS_ACCESS_KEY_ID"),
        }) + "\\n")
    if event.get("pause"):
        GATE.wait(30)
    time.sleep(event.get("sleep", 0))
    if event.get("fail"):
        raise ValueError(event["fail"])
    return {"total": 3 * len(event.get("items", []))}
"""
HEAD = re.compile(r"mirror (\S+) (\S+): (same|changed) \(cloud (\d+(?:\.\d)?) (ms|s) ago, local (\d+(?:\.\d)?) (ms|s)\)")


# --- the two ends -----------------------------------------------------------------------------


class HelperSide:
    """The helper stack's end of the socket: posts as the shim does, records what plldb sends."""

    def __init__(self) -> None:
        self.sent_by_plldb: list[Any] = []
        self.socket: ServerConnection | None = None
        self.connected = asyncio.Event()

    async def handler(self, socket: ServerConnection) -> None:
        self.socket = socket
        self.connected.set()
        async for raw in socket:
            self.sent_by_plldb.append(raw)

    async def post(self, message: dict[str, Any] | str) -> None:
        assert self.socket is not None
        await self.socket.send(message if isinstance(message, str) else p.encode(message))


class Screen:
    """What the user reads (stdout and stderr), read as it comes."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.out = ""
        self.err = ""

    def read(self) -> str:
        captured = self.capsys.readouterr()
        self.out += captured.out
        self.err += captured.err
        return self.out + self.err

    async def shows(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.read():
            assert time.monotonic() < deadline, f"never shown: {text!r}\nshown:\n{self.out}{self.err}"
            await asyncio.sleep(0.02)

    def lines(self) -> list[str]:
        self.read()
        return [line for line in (self.out + self.err).splitlines() if line.strip()]

    def mirror_lines(self, request_id: str) -> list[str]:
        return [line for line in self.lines() if line.startswith("mirror ") and f" {request_id}: " in line]


@pytest.fixture
def marks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    monkeypatch.setenv("MARKS", str(folder))
    return folder


def runs(marks: Path, request_id: str) -> list[dict[str, Any]]:
    """What the handler saw, once per run of ``request_id``."""
    path = marks / request_id
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def make_attachment(tmp_path: Path, function: LocalFunction | None = None,
                    credentials: str = "function") -> Attachment:
    if function is None:
        code = tmp_path / "code"
        code.mkdir(exist_ok=True)
        (code / "app.py").write_text(HANDLER)
        function = LocalFunction("HelloFunction", "app.handler", "python3.11", code, (code,))
    ctx = AwsContext(region="us-east-1")
    helper = HelperStack(**{name: name for name in HelperStack.__dataclass_fields__})
    plan = AttachPlan(helper=helper, functions={FUNCTION: function}, caller_arn="arn:me", debugger_ctx=ctx)
    options = AttachOptions(stack_name="shop", template=tmp_path, credentials=credentials)
    attached = Attachment(ctx, options, plan)
    attached.session_id = SESSION
    return attached


@pytest.fixture
def attached(tmp_path: Path, marks: Path) -> Iterator[Attachment]:
    attached = make_attachment(tmp_path)
    yield attached
    release(attached)
    attached.executor.shutdown(timeout=10)  # gives back the working directory too


def release(attached: Attachment) -> None:
    """Open the handler's gate (the breakpoint is left), if its module was loaded."""
    module = sys.modules.get(attached.executor.runtimes[FUNCTION].namespace.module_name("app"))
    if module is not None and hasattr(module, "GATE"):
        module.GATE.set()


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / ".plldb"
    records.start(records.CaptureOptions(folder))
    yield folder
    records.stop()


def copy(request_id: str = "req-1", event: Any = None, cloud: dict[str, Any] | None = None, *,
         remaining_ms: int = 60_000, started_ago_ms: int = 40, environment: dict[str, str] | None = None,
         **fields: Any) -> dict[str, Any]:
    """The ``mirror`` the shim posts after the cloud answered: the invocation started
    ``started_ago_ms`` ago with ``remaining_ms`` left."""
    started = int(time.time() * 1000) - started_ago_ms
    invocation = {
        "request_id": request_id, "session_id": SESSION, "function_name": FUNCTION,
        "invoked_function_arn": ARN, "deadline_ms": started + remaining_ms,
        "event": json.dumps({"items": ["tea"]} if event is None else event),
        "environment": dict(CREDENTIALS) if environment is None else environment,
        "trace_id": None, "client_context": None, "cognito_identity": None, "tenant_id": "tenant-1",
    }
    cloud = {"response": json.dumps({"total": 3})} if cloud is None else cloud
    message = p.mirror_message({**invocation, **fields}, remaining_ms, **cloud)
    return p.parse_server_message(p.encode(message))  # as the connection hands it over


def attach_session(attached: Attachment, body: Callable[[HelperSide], Awaitable[None]]) -> list[Any]:
    """Connect ``attached`` to a helper side, run ``body``, wait for the mirrors' last lines
    and captures, disconnect; returns every message plldb sent."""

    async def route(message: dict[str, Any]) -> None:  # attach.py's on_message, with mirrors
        if message["type"] == p.TYPE_MIRROR:
            await attached.on_mirror(message)
        else:
            await attached.on_message(message)

    async def scenario() -> list[Any]:
        helper = HelperSide()
        async with serve(helper.handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            connection = Connection(f"ws://127.0.0.1:{port}/test", {"sessionId": SESSION}, route,
                                    headers=dict, check_live=lambda: None, ping_interval=3600)
            attached.connection = connection
            await connection.open()
            receiving = asyncio.create_task(connection.run())
            try:
                await asyncio.wait_for(helper.connected.wait(), 10)
                await body(helper)
                deadline = time.monotonic() + 20
                while (attached.mirror_tasks or attached.executor.running()) and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.1)  # a done callback on its way to the loop
                while attached.mirror_tasks and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
            finally:
                await connection.close()
                await asyncio.wait_for(receiving, 10)
        return helper.sent_by_plldb

    return asyncio.run(scenario())


# --- same, changed ------------------------------------------------------------------------------


def test_a_mirror_runs_the_local_code_with_its_fields_answers_nothing_and_says_same(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        # The cloud started 10 s ago with 5 s left: its deadline is past, the local run gets 5 s.
        await helper.post(copy(remaining_ms=5_000, started_ago_ms=10_000,
                               environment={**CREDENTIALS, "TABLE": "orders"}))
        await screen.shows("mirror HelloFunction req-1: same")

    assert attach_session(attached, body) == [], "a mirror is never answered"
    (line,) = screen.mirror_lines("req-1")
    head = HEAD.fullmatch(line)
    assert head, line
    assert head.group(5) == "s" and 10.0 <= float(head.group(4)) < 12.0, line
    (seen,) = runs(marks, "req-1")
    assert 4_000 < seen["remaining"] <= 5_000, "the time the cloud had, counted from the arrival"
    assert seen | {"remaining": 0} == {"remaining": 0, "arn": ARN, "tenant": "tenant-1", "table": "orders",
                                        "endpoint": None, "key": "ASIAFUNCTION"}


def test_a_changed_result_is_shown_as_a_diff_labelled_deployed_and_local(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(copy(event={"items": ["tea", "cake"]}, cloud={"response": '{"total": 8}'}))
        await screen.shows('+    "total": 6')

    assert attach_session(attached, body) == []
    lines = screen.lines()
    start = lines.index(screen.mirror_lines("req-1")[0])
    assert HEAD.fullmatch(lines[start]).group(3) == "changed"
    assert lines[start + 1:start + 3] == ["--- deployed (what the cloud answered)", "+++ local (your code here)"]
    assert [line for line in lines[start + 3:] if line.startswith(("-  ", "+  "))] == [
        '-    "total": 8', '+    "total": 6'
    ]


def test_a_local_error_is_compared_with_the_clouds_response(
    attached: Attachment, marks: Path, capture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(copy(event={"fail": "no stock"}, cloud={"response": '{"total": 0}'}))
        await screen.shows('+    "errorType": "ValueError"')

    assert attach_session(attached, body) == []
    out = "\n".join(screen.lines())
    (line,) = screen.mirror_lines("req-1")
    assert HEAD.fullmatch(line) and HEAD.fullmatch(line).group(3) == "changed", line
    assert [line for line in out.splitlines() if line.startswith(("-  ", "+  "))] == [
        '-  "result": {', '-    "total": 0', '+  "error": {', '+    "errorMessage": "no stock",',
        '+    "errorType": "ValueError"',
    ]
    assert "HelloFunction | " in out and "no stock" in out, "the handler's error is logged as Lambda does"
    (record,) = records.load_records(capture)
    assert record["outcome"] == {"ok": True, "result": {"total": 0}, "result_is_text": False}
    assert record["mirror"]["local"] == "ValueError" and record["mirror"]["same"] is False


def test_errors_are_compared_by_type_and_message() -> None:
    """As a replay compares them: a stack trace moves with every edit."""
    error = {"errorMessage": "no stock", "errorType": "ValueError", "stackTrace": ["cloud line"]}
    local = runner.Outcome.failure({**error, "stackTrace": ["local line"], "requestId": "r"}, {})
    assert mirror.compare({"error": error}, local) == []
    other = runner.Outcome.failure({**error, "errorMessage": "no stock left"}, {})
    changed = [line for line in mirror.compare({"error": error}, other) if line.startswith(("-  ", "+  "))]
    assert changed == ['-    "errorMessage": "no stock",', '+    "errorMessage": "no stock left",']
    assert mirror.compare({"response": '{"a": 1, "b": 2}'}, runner.Outcome(True, b'{"b":2,"a":1}')) == []


def test_durations_read_in_ms_then_seconds() -> None:
    assert [mirror.duration(ms) for ms in (0, 12.4, 999.4, 999.6, 3140, 61_000)] == [
        "0 ms", "12 ms", "999 ms", "1.0 s", "3.1 s", "61.0 s"
    ]


def test_the_local_run_gets_the_time_the_cloud_had_and_then_times_out(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(copy(event={"sleep": 2}, remaining_ms=1_000, started_ago_ms=5_000))
        await screen.shows('"errorType": "Sandbox.Timedout"')

    assert attach_session(attached, body) == []
    out = "\n".join(screen.lines())
    (line,) = screen.mirror_lines("req-1")
    head = HEAD.fullmatch(line)
    assert head and head.group(3) == "changed" and head.group(5) == "s", line
    assert 5.0 <= float(head.group(4)) < 7.0, line
    assert '"errorMessage": "RequestId: req-1 Error: Task timed out' in out


# --- a breakpoint never holds anything else -----------------------------------------------------


def test_a_paused_local_run_does_not_hold_the_next_messages(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(copy("req-paused", event={"pause": True, "items": ["tea"]}))
        deadline = time.monotonic() + 20
        while not runs(marks, "req-paused"):  # the handler is at its "breakpoint"
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await helper.post(copy("req-next"))
        await helper.post({"type": "log", "level": "INFO", "message": "still listening"})
        await screen.shows("mirror HelloFunction req-next: same")
        await screen.shows("INFO: still listening")
        assert screen.mirror_lines("req-paused") == [], "still paused"
        release(attached)
        await screen.shows("mirror HelloFunction req-paused: same")

    assert attach_session(attached, body) == []


def test_waiting_for_a_debugger_holds_the_mirror_not_the_connection(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)
    attached.gate = threading.Event()  # --wait-for-client, no client yet

    async def body(helper: HelperSide) -> None:
        await helper.post(copy())
        await helper.post({"type": "log", "level": "INFO", "message": "still listening"})
        await screen.shows("INFO: still listening")
        assert "HelloFunction  req-1  waiting for a debugger to attach (--wait-for-client)" in screen.read()
        assert runs(marks, "req-1") == []
        attached.gate.set()
        await screen.shows("mirror HelloFunction req-1: same")

    assert attach_session(attached, body) == []


def test_a_mirror_posted_twice_runs_once(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(copy("req-1"))
        await helper.post(copy("req-1"))
        await screen.shows("mirror HelloFunction req-1: same")
        await helper.post(copy("req-2"))  # handled after the repeat: messages go in order
        await screen.shows("mirror HelloFunction req-2: same")

    assert attach_session(attached, body) == []
    assert len(runs(marks, "req-1")) == 1
    assert len(screen.mirror_lines("req-1")) == 1


# --- what is not run, and says why ----------------------------------------------------------------


def test_a_mirror_too_large_to_post_is_skipped_with_its_size(
    attached: Attachment, marks: Path, capture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(p.mirror_too_large("req-big", SESSION, FUNCTION, 40_960))
        await screen.shows("req-big")

    assert attach_session(attached, body) == []
    assert " ".join(screen.err.split()) == (
        "warning: mirror HelloFunction req-big: skipped: the copy of its event and the cloud's "
        "result would be 40,960 bytes, over the 32 KB one post to this connection may carry (API "
        "Gateway's frame quota), so the shim sent none; the cloud answered the caller as usual "
        "and nothing ran here"
    )
    assert list(marks.iterdir()) == []
    assert records.load_records(capture) == []


def test_a_function_not_mapped_here_is_not_run(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(copy(function_name="shop-OrdersFunction-9Z8Y"))
        await screen.shows("the cloud answered the caller as usual")

    assert attach_session(attached, body) == []
    assert " ".join(screen.err.split()) == (
        "error: mirror shop-OrdersFunction-9Z8Y req-1: not run here: function "
        "shop-OrdersFunction-9Z8Y is not mapped to local code in this plldb session (`plldb "
        "functions` lists what this project maps); the cloud answered the caller as usual"
    )
    assert list(marks.iterdir()) == []


def test_a_mirror_beyond_the_executors_limit_is_not_run(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)
    attached.executor.max_workers = 1

    async def body(helper: HelperSide) -> None:
        await helper.post(copy("req-paused", event={"pause": True, "items": ["tea"]}))
        deadline = time.monotonic() + 20
        while not runs(marks, "req-paused"):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await helper.post(copy("req-busy"))
        await screen.shows("req-busy: not run here")
        release(attached)
        await screen.shows("mirror HelloFunction req-paused: same")

    assert attach_session(attached, body) == []
    assert " ".join(screen.err.split()) == (
        "error: mirror HelloFunction req-busy: not run here: 1 handlers are already running in "
        "plldb (limit 1); the cloud answered the caller as usual"
    )
    assert runs(marks, "req-busy") == []


def test_seen_remembers_the_last_request_ids() -> None:
    seen = mirror.Seen(limit=2)
    assert [seen.first_time(r) for r in ("a", "b", "a", "c", "a")] == [True, True, False, True, True]


def test_a_mirror_without_the_functions_credentials_is_not_run(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(copy(environment={"TABLE": "orders"}))
        await screen.shows("the cloud answered the caller as usual")

    assert attach_session(attached, body) == []
    err = " ".join(screen.err.split())
    assert err.startswith(
        f"error: mirror HelloFunction req-1: not run here: the invocation of {FUNCTION} carries no "
        "AWS_ACCESS_KEY_ID and no AWS_SECRET_ACCESS_KEY of the function: plldb does not run it "
        "with your own credentials instead."
    ), err
    assert "attach with --credentials local" in err
    assert list(marks.iterdir()) == []


def test_another_sessions_mirror_is_not_run(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(copy(session_id=OTHER_SESSION))
        await screen.shows("whoever runs the helper stack")

    assert attach_session(attached, body) == []
    assert " ".join(screen.err.split()) == (
        f"warning: refused the mirror of request req-1 of {FUNCTION}: it is for session "
        f"{OTHER_SESSION}, not this session {SESSION}; not run. Something posted another "
        "session's mirror to this session's connection: report it, with this request id, to "
        "whoever runs the helper stack"
    )
    assert list(marks.iterdir()) == []


def test_a_malformed_mirror_is_refused_and_the_connection_goes_on(
    attached: Attachment, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the user sees it: the log handler attach installs (console.setup_logging)."""
    screen = Screen(capsys)
    connection_log = logging.getLogger("plldb.session.connection")
    shown = console.ConsoleHandler(verbose=False)
    connection_log.addHandler(shown)
    malformed = dict(copy("req-bad"))
    malformed["cloud"] = {"response": "{}", "error": {"errorMessage": "x", "errorType": "E"}}

    async def body(helper: HelperSide) -> None:
        await helper.post(p.encode(malformed))
        await helper.post(p.encode({**copy("req-bad-2"), "remaining_ms": -3}))
        await helper.post(copy("req-good"))
        await screen.shows("mirror HelloFunction req-good: same")

    try:
        assert attach_session(attached, body) == []
    finally:
        connection_log.removeHandler(shown)
    err = " ".join(screen.err.split())
    assert ("warning: ignored an invalid message from the helper stack: 'mirror' field 'cloud' "
            "needs exactly one of 'response' and 'error'") in err
    assert ("warning: ignored an invalid message from the helper stack: 'mirror' field "
            "'remaining_ms' must be 0 to 900000") in err
    assert runs(marks, "req-bad") == [] and runs(marks, "req-bad-2") == []


# --- captures -----------------------------------------------------------------------------------


def test_a_mirror_is_captured_with_the_clouds_result_and_marked(
    attached: Attachment, marks: Path, capture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    screen = Screen(capsys)
    environment = {**CREDENTIALS, "TABLE": "orders", "AWS_ENDPOINT_URL": "https://elsewhere.example",
                   "API_KEY": "k-123"}

    async def body(helper: HelperSide) -> None:
        await helper.post(copy(event={"items": ["tea", "cake"], "password": "hunter2"},
                               cloud={"response": '{"total": 8}'}, remaining_ms=4_000,
                               started_ago_ms=2_000, environment=environment))
        await screen.shows("mirror HelloFunction req-1: changed")

    assert attach_session(attached, body) == []
    assert runs(marks, "req-1")[0]["endpoint"] is None, "redirecting variables are dropped"
    assert "its environment sets AWS_ENDPOINT_URL; not used here" in " ".join(screen.err.split())
    (record,) = records.load_records(capture)
    assert record["function"] == "HelloFunction" and record["function_name"] == FUNCTION
    assert record["outcome"] == {"ok": True, "result": {"total": 8}, "result_is_text": False}
    assert record["event"] == {"items": ["tea", "cake"], "password": records.REDACTED}
    assert record["context"]["request_id"] == "req-1"
    assert record["context"]["deadline_left_ms"] == 4_000
    assert record["context"]["tenant_id"] == "tenant-1" and record["context"]["invoked_function_arn"] == ARN
    assert record["environment"] == {"TABLE": "orders"}
    assert "API_KEY" in record["environment_left_out"]
    assert record["mirror"]["same"] is False and record["mirror"]["local"] == "ok"
    assert 2_000 <= record["mirror"]["cloud_age_ms"] < 10_000
    assert record["code_version"] == records.code_version(attached.plan.functions[FUNCTION])


def test_plldb_replay_takes_a_mirrors_capture_as_it_is(
    tmp_path: Path, marks: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Production answered a total of 8 for two items; today's code says 6: replay compares
    the code of the day with what production answered."""
    shop = Path(shutil.copytree(SHOP, tmp_path / "shop"))
    function = discover(shop / "template.yaml").functions["ShopFunction"]
    attached = make_attachment(tmp_path, function)
    folder = records.capture_dir(shop / "template.yaml")
    records.start(records.CaptureOptions(folder))
    production = {"total": 8, "currency": "EUR", "request_id": "req-1", "arn": ARN,
                  "tenant": "tenant-1", "has_credentials": False}
    screen = Screen(capsys)

    async def body(helper: HelperSide) -> None:
        await helper.post(copy(event={"items": ["tea", "cake"]}, cloud={"response": json.dumps(production)},
                               environment={**CREDENTIALS, "CURRENCY": "EUR"}))
        await screen.shows("mirror ShopFunction req-1: changed")

    try:
        assert attach_session(attached, body) == []
    finally:
        records.stop()
        attached.executor.shutdown(timeout=10)
    (record,) = records.load_records(folder)
    short = record["id"][:8]
    listed = plldb(["events", "--json"], shop)
    assert listed.returncode == 0, listed.stderr
    assert [(e["short_id"], e["outcome"]) for e in json.loads(listed.stdout)] == [(short, "ok")]
    changed = plldb(["replay", short], shop)
    assert changed.returncode == 1, changed.stderr
    assert f"{short} ShopFunction: changed" in changed.stdout
    assert [line for line in changed.stdout.splitlines() if line.startswith(("-  ", "+  "))] == [
        '-    "total": 8', '+    "total": 6'
    ]
    source = shop / "functions" / "shop" / "app.py"
    source.write_text(source.read_text().replace("PRICE = 3", "PRICE = 4"))
    same = plldb(["replay", short], shop)
    assert same.returncode == 0, same.stdout + same.stderr
    assert f"{short} ShopFunction: same (code changed since the capture; AWS calls answered from the capture)" in same.stdout
