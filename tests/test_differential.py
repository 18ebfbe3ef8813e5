"""Differential test: the same handlers through the real awslambdaric and through plldb's executor.

Each scenario starts the real runtime (awslambdaric, behind the Runtime API emulator) on a copy
of tests/fixtures/differential, invokes it once, and runs the very same files (same paths, so
stack traces match), environment and headers through :class:`plldb.local.executor.Executor`. Compared
byte for byte: the result body, the error body (init errors included) and every log line the
runtime wrote; the only normalisation is timestamps.

Accepted differences (not compared, each for a reason):

* ``sys.exit()``/``os._exit()`` in a handler: Lambda's process dies and the platform reports
  ``Runtime.ExitError``; plldb must survive, so it answers with the same type and its own
  message (tests/test_executor.py checks it).
* Platform lines (``START``/``END``/``REPORT``, ``INIT_START``, ``Task timed out``) are written by
  Lambda's service, not by the runtime; plldb does not fake them (its console shows one line per
  invocation instead).
* A module named like a module the runtime imported before the handler (``json.py`` in the code
  folder): in Lambda the runtime's copy wins, in plldb the function's file. plldb cannot know
  which modules the runtime preloads in every Python version.
* The text of ``Runtime.UnmarshalError`` for some malformed JSON events: awslambdaric parses
  with simplejson, whose messages differ from the standard library's in places (``{not json``:
  "…enclosed in double quotes or '}'"); plldb's runner is standard library only. The
  scenario uses a payload both word the same.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from plldb import protocol
from plldb.local.executor import Executor
from plldb.project.model import LocalFunction
from plldb.runner import Outcome
from tests.harness.container import launch
from tests.harness.runtime_api import SUCCESS, RuntimeApiEmulator

pytestmark = pytest.mark.timeout(120)

FIXTURE = Path(__file__).parent / "fixtures" / "differential"
FUNCTION = "differential"
REQUEST_ID = "6f1b8d1e-0c4a-4a8e-9d1e-2f5a7d1c0b11"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")
JSON_LOGS = {"AWS_LAMBDA_LOG_FORMAT": "JSON"}


@dataclass
class Scenario:
    handler: str
    event: bytes = b'{"key": "k"}'
    environment: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # client_context, cognito_identity, tenant_id


SCENARIOS = {
    # loading
    "ok": Scenario("app.echo"),
    "slash path": Scenario("pkg/mod.handler"),
    "missing module": Scenario("missing_module.handler"),
    "missing function": Scenario("app.nothing_here"),
    "malformed name": Scenario("nodot"),
    "empty module name": Scenario(".handler"),
    "stdlib module as handler": Scenario("json.handler"),
    "syntax error": Scenario("syntax_error.handler"),
    "exception at import": Scenario("raise_at_import.handler"),
    "missing library at import": Scenario("import_missing.handler"),
    "data folder named like the stdlib": Scenario("app.stdlib_not_shadowed"),
    # errors
    "handler error": Scenario("app.fail"),
    "chained error": Scenario("app.chained"),
    "import error at call time": Scenario("app.import_missing_name"),
    "handler error, JSON logs": Scenario("app.fail", environment=JSON_LOGS),
    "init error, JSON logs": Scenario("raise_at_import.handler", environment=JSON_LOGS),
    # marshalling
    "none": Scenario("app.returns_none"),
    "bytes": Scenario("app.raw_bytes"),
    "unserializable": Scenario("app.unserializable"),
    "invalid event": Scenario("app.echo", event=b"not json"),
    "unicode on 3.12": Scenario("app.echo", environment={"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}),
    # context
    "context": Scenario("app.context_fields", headers={
        "client_context": json.dumps({"custom": {"a": 1}, "env": {"e": "v"}, "client": {"app_title": "t"}}),
        "cognito_identity": json.dumps({"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}),
        "tenant_id": "tenant-42",
    }),
    "bad client context": Scenario("app.context_fields", headers={"client_context": "{nope"}),
    # logging
    "logs": Scenario("app.logs"),
    "logs, level DEBUG": Scenario("app.logs", environment={"AWS_LAMBDA_LOG_LEVEL": "DEBUG"}),
    "logs, level ERROR": Scenario("app.logs", environment={"AWS_LAMBDA_LOG_LEVEL": "error"}),
    "logs, JSON": Scenario("app.logs", environment=JSON_LOGS, headers={"tenant_id": "tenant-7"}),
    "setLevel": Scenario("app.set_level"),
    "request id format": Scenario("app.request_id_format"),
    "module names": Scenario("app.names"),
    "threads, warnings, basicConfig, unfinished line": Scenario("app.output_edges"),
}


@dataclass
class Observed:
    ok: bool
    body: bytes
    logs: list[str]


@pytest.fixture(scope="module")
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator(FUNCTION, timeout_s=10.0) as emu:
        yield emu


def code_copy(workdir: Path) -> Path:
    code = workdir / "code"
    shutil.copytree(FIXTURE, code)
    (code / "syntax_error.py").write_text("def broken(:\n    pass\n")  # kept out of the repo's lint
    return code


def normalised(lines: list[str]) -> list[str]:
    return [TIMESTAMP.sub("<time>", line) for line in lines]


def run_awslambdaric(emulator: RuntimeApiEmulator, code: Path, workdir: Path, scenario: Scenario) -> tuple[Observed, dict, Path]:
    container = launch(emulator, code, scenario.handler, workdir=workdir, function_name=FUNCTION,
                       environment=scenario.environment, restart=False)
    try:
        result = emulator.invoke(scenario.event, request_id=REQUEST_ID, wait_s=20, **scenario.headers)
        if result.next_headers:
            observed = Observed(result.status == SUCCESS, result.body, [])
        else:  # init failed: awslambdaric posted to /init/error and exited
            init_error = emulator.wait_init_error(10)
            assert init_error is not None, container.logs()
            emulator.init_errors.clear()
            observed = Observed(False, init_error.body, [])
        container.wait(10) if not result.next_headers else None
    finally:
        container.stop()
    # records end with LF; CR joins an error's lines (read as bytes: text mode would turn CR into LF)
    logged = container.log_path.read_bytes().decode()
    observed.logs = logged.removesuffix("\n").split("\n") if logged else []
    message = {
        "type": protocol.TYPE_INVOCATION, "request_id": REQUEST_ID, "session_id": "s",
        "function_name": FUNCTION, "invoked_function_arn": emulator.function_arn,
        "deadline_ms": result.deadline_ms or int((time.time() + 10) * 1000), "event": scenario.event.decode(),
        "environment": container.env, "trace_id": result.next_headers.get("Lambda-Runtime-Trace-Id"),
        **scenario.headers,
    }
    return observed, message, container.task_root


def run_executor(task_root: Path, scenario: Scenario, message: dict) -> Observed:
    lines: list[str] = []
    done = threading.Event()
    outcomes: list[Outcome] = []

    def answer(_request_id: str, outcome: Outcome) -> None:
        outcomes.append(outcome)
        done.set()

    function = LocalFunction(logical_id="Differential", handler=scenario.handler, runtime="python3.11",
                             code_dir=task_root, import_path=(task_root,), physical_name=FUNCTION)
    executor = Executor({FUNCTION: function}, output=lambda _function, line: lines.append(line))
    try:
        executor.submit(protocol.parse_server_message(protocol.encode(message)), answer)
        assert done.wait(20), "the executor did not answer"
    finally:
        executor.shutdown(timeout=5)
    return Observed(outcomes[0].ok, outcomes[0].body, lines)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_outcome_and_logs_as_awslambdaric(
    name: str, emulator: RuntimeApiEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest records warnings; plldb shows them the standard way (written to sys.stderr)
    monkeypatch.setattr(warnings, "_showwarnmsg_impl", lambda msg: sys.stderr.write(warnings._formatwarnmsg(msg)))
    scenario = SCENARIOS[name]
    code = code_copy(tmp_path)
    lambda_side, message, task_root = run_awslambdaric(emulator, code, tmp_path / "container", scenario)
    plldb_side = run_executor(task_root, scenario, message)
    assert (plldb_side.ok, plldb_side.body) == (lambda_side.ok, lambda_side.body)
    assert lambda_side.logs or name == "slash path", "every other scenario logs something"
    assert normalised(plldb_side.logs) == normalised(lambda_side.logs)
