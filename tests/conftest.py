"""Shared fixtures: a real moto server process, and an environment pointing boto3 at it.

And the call audit (docs/requirements/call-audit.md): every moto server the run starts
records the AWS calls made to it; at the end, a call its principal's policies do not
allow fails the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import call_recorder, iam_audit
from tests.harness.moto_server import MotoServer

_RECORDS = pytest.StashKey[Path]()
_OWN_RECORDS = pytest.StashKey[bool]()
_AUDIT = pytest.StashKey[iam_audit.Report]()


def pytest_configure(config: pytest.Config) -> None:
    """Moto servers started from now on record their calls (they inherit the variable)."""
    folder = os.environ.get(call_recorder.ENV_RECORD_DIR)
    config.stash[_OWN_RECORDS] = not folder
    if not folder:
        folder = tempfile.mkdtemp(prefix="plldb-calls-")
        os.environ[call_recorder.ENV_RECORD_DIR] = folder
    config.stash[_RECORDS] = Path(folder)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """When each test ran, so that the audit names the tests running at a violation."""
    started = time.time()
    yield
    iam_audit.record_test(item.config.stash[_RECORDS], item.nodeid, started, time.time())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The call audit: any recorded call not allowed fails the run."""
    folder = session.config.stash[_RECORDS]
    report = iam_audit.audit(folder)
    session.config.stash[_AUDIT] = report
    if report.violations and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if session.config.stash[_OWN_RECORDS] and not report.violations:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report = terminalreporter.config.stash.get(_AUDIT, None)
    if report is None or not (report.audited or report.violations):
        return
    terminalreporter.section("call audit (IAM policies, resources and conditions)")
    terminalreporter.write_line(report.text())
    if report.violations:
        folder = terminalreporter.config.stash[_RECORDS]
        terminalreporter.write_line(f"records kept in {folder} (python -m tests.harness.iam_audit)")
        terminalreporter.write_line(
            "the run fails: AWS would refuse these calls (fix the policy or the call; a test "
            "that provokes a refusal declares it with iam_audit.expect_refusal)",
            red=True,
        )


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A clean moto state and this process's boto3 pointed at it via AWS_ENDPOINT_URL."""
    moto_server.reset()
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
            monkeypatch.delenv(name)
    for name, value in moto_server.environment().items():
        monkeypatch.setenv(name, value)
    yield moto_server
