"""Debugger integration: debugpy for VS Code, and PyCharm's two ways in.

Handlers run inside the ``plldb`` process, so PyCharm's "Attach to Process" needs nothing
from us but a process that is easy to pick (its command line reads ``plldb attach ...``).
debugpy must listen before any user module is imported so breakpoints bind on first load.

A breakpoint must pause one invocation, never plldb. Every debugger here is pydevd (debugpy
vendors it; PyCharm injects it by PID or connects with pydevd-pycharm), and pydevd's own
defaults stop *all* threads on a breakpoint. pydevd leaves alone any thread whose
``threading.Thread`` object carries ``pydev_do_not_trace`` (never traced, skipped by "suspend
all"), and lists none that carry ``is_pydev_daemon_thread``. Both are plain attributes of the
thread object, so they hold however pydevd arrives, including injected later by PID.
:func:`keep_running` sets them on plldb's own threads. The main thread (asyncio loop, signal
handling) stays listed: pydevd ends its session when no listed thread is left, which is the
case between invocations.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

FILE_VALIDATION_VARIABLE = "PYDEVD_DISABLE_FILE_VALIDATION"


class DebuggerError(Exception):
    """The debugger could not be started (port in use, package missing)."""


@dataclass(frozen=True)
class DebugpyOptions:
    host: str = "127.0.0.1"
    port: int = 5678
    wait_for_client: bool = False


def is_loopback(host: str) -> bool:
    """Whether debugpy on ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def remote_debugpy_warning(host: str) -> str:
    """What to say when debugpy listens beyond this machine (--debugpy-allow-remote)."""
    return (
        f"debugpy listens on {host}, not only on this machine: whoever reaches that address "
        "can run code in plldb, with the debugged functions' credentials and events"
    )


def vscode_configuration(host: str, port: int) -> dict:
    """The "Python Debugger: Remote Attach" configuration for this process."""
    return {
        "name": "PLLDB: attach to plldb",
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": host, "port": port},
        "justMyCode": True,
    }


def vscode_launch_json(host: str, port: int) -> str:
    """A complete .vscode/launch.json holding that configuration."""
    return json.dumps(
        {"version": "0.2.0", "configurations": [vscode_configuration(host, port)]}, indent=2
    )


def keep_running(thread: threading.Thread, hidden: bool = True) -> None:
    """Mark one of plldb's own threads: pydevd never traces or suspends it, and (``hidden``)
    never lists it in the IDE. Mark before ``start()`` where possible, so it is never listed."""
    thread.pydev_do_not_trace = True  # type: ignore[attr-defined]
    if hidden:
        thread.is_pydev_daemon_thread = True  # type: ignore[attr-defined]


MAIN_THREAD_NAME = "plldb main (connection, Ctrl-C): never paused"


def keep_main_thread_running() -> None:
    """The main thread runs the asyncio loop and receives Ctrl-C: never traced or suspended.

    Not hidden: pydevd ends the debug session once it lists no thread at all. Its name says
    what it is in the IDE's thread list (with no frames, even when "all threads" stop).
    """
    main = threading.main_thread()
    keep_running(main, hidden=False)
    main.name = MAIN_THREAD_NAME


def plldb_thread(target: Callable[[], Any], name: str) -> threading.Thread:
    """A daemon thread of plldb's own (not a handler's), marked before it starts."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    keep_running(thread)
    return thread


def mark_current_thread() -> None:
    """Thread-pool initializer: the pool's workers are plldb's own threads."""
    keep_running(threading.current_thread())


@contextmanager
def quiet_file_validation() -> Iterator[None]:
    """Silence pydevd's frozen-modules warning while it loads, the way its message says
    (``PYDEVD_DISABLE_FILE_VALIDATION=1``; it concerns breakpoints in the standard library,
    not in handlers). Scoped, so the variable never reaches the handlers' environment."""
    saved = os.environ.get(FILE_VALIDATION_VARIABLE)
    os.environ[FILE_VALIDATION_VARIABLE] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(FILE_VALIDATION_VARIABLE, None)
        else:
            os.environ[FILE_VALIDATION_VARIABLE] = saved



def start_debugpy(options: DebugpyOptions) -> tuple[str, int]:
    """Listen for VS Code; returns the address actually bound.

    debugpy stops every thread on a breakpoint unless the client says
    ``"stopAllThreadsOnSuspend": false``; VS Code sends nothing, so plldb makes "stop only the
    thread that hit" the default: other invocations keep running while one is paused. A
    launch.json that asks for all-stop still gets it (plldb's own threads keep running).
    """
    import debugpy

    try:
        with quiet_file_validation():
            host, port = debugpy.listen((options.host, options.port))
    except (OSError, RuntimeError) as exc:
        raise DebuggerError(
            f"debugpy cannot listen on {options.host}:{options.port} ({exc}): "
            "choose another --debugpy-port"
        ) from exc
    stop_only_the_paused_thread()
    log.info("debugpy listening on %s:%s", host, port)
    return host, port


def stop_only_the_paused_thread() -> None:
    """Turn off pydevd's "suspend all threads" default for this process (see start_debugpy)."""
    import pydevd  # type: ignore[import-not-found]  # on sys.path once debugpy listens

    debugger = pydevd.get_global_debugger()
    if debugger is not None:
        debugger.multi_threads_single_notification = False


def client_gate(options: DebugpyOptions) -> threading.Event:
    """An event set once invocations may run: at once, or when a debugger has attached."""
    gate = threading.Event()
    if not options.wait_for_client:
        gate.set()
        return gate

    def wait() -> None:
        import debugpy

        debugpy.wait_for_client()
        gate.set()

    plldb_thread(wait, "plldb-debugpy-wait").start()
    return gate


def connect_pycharm(host: str, port: int) -> None:
    """PyCharm's "Python Debug Server" flow: this process connects out to the IDE."""
    try:
        import pydevd_pycharm  # type: ignore[import-not-found]
    except ImportError as exc:
        raise DebuggerError(
            "--pycharm-port needs the pydevd-pycharm package matching your PyCharm version: "
            "pip install pydevd-pycharm~=<your PyCharm build>"
        ) from exc
    try:
        with quiet_file_validation():
            pydevd_pycharm.settrace(host, port=port, suspend=False, stdoutToServer=False,
                                    stderrToServer=False)
    except (OSError, ConnectionError) as exc:
        raise DebuggerError(
            f"cannot reach PyCharm's debug server at {host}:{port}: start it first"
        ) from exc
