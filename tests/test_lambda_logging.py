"""Handlers' logging and output through the executor, as the Lambda Python runtime writes them."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from plldb import console
from plldb.local.executor import Executor
from tests.test_executor import FIXTURES, Answers, invocation, local_function

pytestmark = pytest.mark.timeout(60)
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


class Lines:
    """The output callable: (function, line) pairs, in order."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, function: str, line: str) -> None:
        with self.lock:
            self.lines.append((function, line))

    def texts(self) -> list[str]:
        with self.lock:
            return [line for _, line in self.lines]


@contextmanager
def logs_executor(handler: str, lines: Lines) -> Iterator[Executor]:
    function = local_function("Logs", handler, FIXTURES / "logs")
    executor = Executor({function.physical_name: function}, output=lines)
    try:
        yield executor
    finally:
        executor.shutdown(timeout=5)


def call(handler: str, env: dict | None = None, event: object = None, **extra) -> tuple[dict, Answers, Lines]:
    lines, answers = Lines(), Answers()
    with logs_executor(handler, lines) as executor:
        message = invocation("stack-Logs", event, env=env, **extra)
        executor.submit(message, answers)
        answers.wait(message["request_id"])
    return message, answers, lines


def test_text_format_print_stderr_and_warnings_per_invocation(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest records warnings; show them the standard way (written to sys.stderr) as plldb does
    monkeypatch.setattr(warnings, "_showwarnmsg_impl", lambda msg: sys.stderr.write(warnings._formatwarnmsg(msg)))
    message, answers, lines = call("app.everything")
    request_id = message["request_id"]
    texts = lines.texts()
    assert {function for function, _ in lines.lines} == {"Logs"}
    assert re.fullmatch(rf"\[WARNING\]\t{TIME}\t\tmodule loaded", texts[0]), "init records have no request id"
    assert re.fullmatch(rf"\[WARNING\]\t{TIME}\t{request_id}\twarning line", texts[1])
    assert texts[2:4] == ["printed words", "to stderr"]
    assert re.fullmatch(r".*logs/app\.py:\d+: UserWarning: careful", texts[4])
    assert texts[5].strip() == 'warnings.warn("careful", UserWarning, stacklevel=1)'
    assert texts[-1] == "no newline yet", "an unfinished line is shown when the invocation ends"
    assert not any("debug line" in t or "info line" in t for t in texts), "the root level is WARNING"


@pytest.mark.filterwarnings("ignore:careful:UserWarning")
def test_log_level_from_the_environment_and_set_level() -> None:
    level_before = logging.getLogger().level
    _, _, lines = call("app.everything", env={"AWS_LAMBDA_LOG_LEVEL": "debug"})
    assert [t.split("\t")[-1] for t in lines.texts()[1:4]] == ["debug line", "info line", "warning line"]
    _, answers, lines = call("app.set_level", event={"level": "INFO"})
    assert [t.split("\t")[-1] for t in lines.texts()] == ["module loaded", "after setLevel"]
    assert logging.getLogger().level == level_before, "plldb's root level untouched"


def test_request_id_format_on_the_root_handlers_works_and_stays_the_functions() -> None:
    plldb_root = logging.getLogger()
    handlers_before = list(plldb_root.handlers)
    formatters_before = [h.formatter for h in handlers_before]
    message, answers, lines = call("app.request_id_format", tenant_id="tenant-1")
    assert answers.result(message["request_id"]) == 1, "the function's root has the runtime's one handler"
    assert lines.texts()[-1] == f"{message['request_id']}|tenant-1|ERROR|custom format"
    assert plldb_root.handlers == handlers_before
    assert [h.formatter for h in plldb_root.handlers] == formatters_before, "plldb's formats unchanged"


def test_threads_of_the_handler_log_with_its_request_id() -> None:
    message, _, lines = call("app.from_a_thread")
    assert re.fullmatch(rf"\[WARNING\]\t{TIME}\t{message['request_id']}\tfrom a thread", lines.texts()[-1])


def test_json_format_records() -> None:
    message, _, lines = call("app.json_record", env={"AWS_LAMBDA_LOG_FORMAT": "json"}, tenant_id="t-9")
    init, failed, structured = (json.loads(t) for t in lines.texts())
    assert init["requestId"] == "" and init["logger"] == "init" and "tenantId" not in init
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", failed.pop("timestamp"))
    stack = failed.pop("stackTrace")
    location = failed.pop("location")
    assert failed == {
        "level": "ERROR", "message": "failed 1", "logger": "root", "errorType": "KeyError",
        "errorMessage": "'missing'", "requestId": message["request_id"], "tenantId": "t-9", "order": 7,
    }
    assert "raise KeyError" in stack[0] and location.endswith("app.py:json_record:47")
    assert structured["message"] == {"structured": True} and structured["level"] == "WARNING"


def test_handler_error_is_logged_like_the_runtime() -> None:
    message, _, lines = call("app.fail")
    error = lines.texts()[-1]
    assert error.startswith("[ERROR] ValueError: bad input\rTraceback (most recent call last):\r")
    assert '\xa0File "' in error and error.endswith('raise ValueError("bad input")')
    _, _, lines = call("app.fail", env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    record = json.loads(lines.texts()[-1])
    assert list(record)[:4] == ["timestamp", "level", "errorMessage", "errorType"]
    assert record["requestId"] and record["errorType"] == "ValueError"


def test_init_error_is_logged_after_the_runtimes_warning() -> None:
    _, answers, lines = call("broken.handler")
    texts = lines.texts()
    assert re.fullmatch(rf"\[WARNING\]\t{TIME}\t\tstarting", texts[0])
    assert re.fullmatch(rf"\[WARNING\]\t{TIME}\t\tLAMBDA_WARNING: Unhandled exception\. .*runtimes-update\.html\r", texts[1])
    assert texts[2].startswith("[ERROR] RuntimeError: cannot start\rTraceback (most recent call last):\r")


def test_context_log_writes_to_the_invocation() -> None:
    _, _, lines = call("app.context_log")
    assert lines.texts()[-1] == "via context"


@pytest.mark.filterwarnings("ignore:careful:UserWarning")
def test_plldb_threads_keep_the_real_streams(capsys: pytest.CaptureFixture[str]) -> None:
    call("app.everything")
    print("plldb's own line")
    assert "plldb's own line" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:careful:UserWarning")
def test_a_failing_output_never_fails_the_invocation(capsys: pytest.CaptureFixture[str]) -> None:
    def broken(_function: str, _line: str) -> None:
        raise OSError("terminal gone")

    function = local_function("Logs", "app.everything", FIXTURES / "logs")
    executor = Executor({function.physical_name: function}, output=broken)
    answers = Answers()
    try:
        message = invocation("stack-Logs")
        executor.submit(message, answers)
        assert answers.result(message["request_id"]) == "ok"
    finally:
        executor.shutdown(timeout=5)
    assert "OSError: terminal gone" in capsys.readouterr().out, "the failure is shown on plldb's stream"


def test_console_marks_each_line_with_the_function_and_shows_text_as_is(capsys: pytest.CaptureFixture[str]) -> None:
    console.function_output("Hello", "[ERROR] KeyError: 'k'\rTraceback [bold]x[/bold]")
    assert capsys.readouterr().out == "Hello | [ERROR] KeyError: 'k'\nHello | Traceback [bold]x[/bold]\n"
