"""Debugger integration: debugpy for VS Code, and PyCharm's two ways in.

Handlers run inside the ``plldb`` process, so PyCharm's "Attach to Process" needs nothing
from us but a process that is easy to pick (its command line reads ``plldb attach ...``).
debugpy must listen before any user module is imported so breakpoints bind on first load.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

log = logging.getLogger(__name__)


class DebuggerError(Exception):
    """The debugger could not be started (port in use, package missing)."""


@dataclass(frozen=True)
class DebugpyOptions:
    host: str = "127.0.0.1"
    port: int = 5678
    wait_for_client: bool = False


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


def start_debugpy(options: DebugpyOptions) -> tuple[str, int]:
    """Listen for VS Code; returns the address actually bound."""
    import debugpy

    try:
        host, port = debugpy.listen((options.host, options.port))
    except (OSError, RuntimeError) as exc:
        raise DebuggerError(
            f"debugpy cannot listen on {options.host}:{options.port} ({exc}): "
            "choose another --debugpy-port"
        ) from exc
    log.info("debugpy listening on %s:%s", host, port)
    return host, port


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

    threading.Thread(target=wait, name="plldb-debugpy-wait", daemon=True).start()
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
        pydevd_pycharm.settrace(host, port=port, suspend=False, stdoutToServer=False,
                                stderrToServer=False)
    except (OSError, ConnectionError) as exc:
        raise DebuggerError(
            f"cannot reach PyCharm's debug server at {host}:{port}: start it first"
        ) from exc
