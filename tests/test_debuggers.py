"""plldb.local.debuggers without a debugger: the thread marks and the scoped pydevd variable."""

from __future__ import annotations

import os
import threading

from plldb.local import debuggers


def test_plldb_threads_are_marked_before_they_start() -> None:
    seen: dict[str, bool] = {}

    def look() -> None:
        me = threading.current_thread()
        seen.update(traced=not getattr(me, "pydev_do_not_trace", False),
                    listed=not getattr(me, "is_pydev_daemon_thread", False))

    thread = debuggers.plldb_thread(look, "plldb-test")
    assert thread.pydev_do_not_trace and thread.is_pydev_daemon_thread  # type: ignore[attr-defined]
    thread.start()
    thread.join(10)
    assert seen == {"traced": False, "listed": False}


def test_file_validation_is_silenced_only_while_the_debugger_loads(monkeypatch) -> None:
    monkeypatch.delenv(debuggers.FILE_VALIDATION_VARIABLE, raising=False)
    with debuggers.quiet_file_validation():
        assert os.environ[debuggers.FILE_VALIDATION_VARIABLE] == "1"
    assert debuggers.FILE_VALIDATION_VARIABLE not in os.environ
    monkeypatch.setenv(debuggers.FILE_VALIDATION_VARIABLE, "0")
    with debuggers.quiet_file_validation():
        pass
    assert os.environ[debuggers.FILE_VALIDATION_VARIABLE] == "0"  # the user's own value
