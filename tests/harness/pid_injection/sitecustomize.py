"""Test harness only: debugpy's attach-by-PID, without gdb, in a process started with this
folder on PYTHONPATH and PLLDB_TEST_INJECT_PORT set.

`python -m debugpy --listen ADDRESS --pid PID` makes gdb run, in the target process, one
line that calls ``attach_pid_injected.attach(setup)`` from debugpy's server folder. Where gdb
cannot do that (see tests/test_e2e_attach.py), SIGUSR1 runs the same call on the main
thread, where gdb's call would run: pydevd arrives after plldb started, with its defaults.
"""

import os
import signal
import sys

PORT_VARIABLE = "PLLDB_TEST_INJECT_PORT"


def _inject(_signum: int, _frame: object) -> None:
    import debugpy.server

    sys.path.insert(0, os.path.dirname(debugpy.server.__file__))
    import attach_pid_injected

    del sys.path[0]
    attach_pid_injected.attach({
        "mode": "listen",
        "address": ["127.0.0.1", int(os.environ[PORT_VARIABLE])],
        "wait_for_client": False,
        "log_to": None,
        "adapter_access_token": None,
    })


if os.environ.get(PORT_VARIABLE):
    signal.signal(signal.SIGUSR1, _inject)
