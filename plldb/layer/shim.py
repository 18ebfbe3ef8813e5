"""Entry point of the runtime shim: ``python shim.py <original runtime command...>``.

The wrapper runs this file with the runtime's own interpreter when a debugging session is
set. It finds the rest of the layer relative to itself (the layer can be unpacked anywhere),
serves invocations through the local debugger, and hands the process over to the original
runtime command with ``exec`` once the session is gone or if the shim cannot start: the
function always keeps working.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

log = logging.getLogger("plldb.shim")

LAYER_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def use_layer_sys_path(command: list[str]) -> None:
    """Import ``plldb`` from this layer, and boto3 from wherever the runtime keeps it.

    Run as a script, ``sys.path[0]`` is this file's folder: it is replaced by the layer root.
    The original bootstrap script's folder (``/var/runtime`` on Lambda, where the runtime's
    boto3 lives) goes at the end, as it would be ``sys.path[0]`` for the original command.
    """
    sys.path[0] = LAYER_ROOT
    script = command[1] if len(command) > 1 else ""
    runtime_dir = os.path.dirname(os.path.abspath(script)) if script.endswith(".py") else ""
    for folder in (runtime_dir, os.environ.get("LAMBDA_RUNTIME_DIR", "")):
        if folder and folder not in sys.path:
            sys.path.append(folder)


def configure_logging() -> None:
    """One line per event on stderr (the function's log), without touching the root logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[plldb] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def hand_over(command: list[str]) -> NoReturn:
    """Become the original runtime (or the function's own chained wrapper): never returns.

    If even that fails, the failure is reported as an init error, as the runtime's own
    bootstrap would, and the process exits.
    """
    from plldb import naming

    original_wrapper = os.environ.get(naming.ENV_ORIGINAL_WRAPPER)
    argv = [original_wrapper, *command] if original_wrapper else list(command)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        log.error("cannot start the original runtime %s: %s", argv, exc)
        report_init_error(f"cannot start {argv[0]}: {exc}")
        sys.exit(127)


def report_init_error(message: str) -> None:
    try:
        from plldb.layer.loop import shim_error
        from plldb.layer.runtime_api import RuntimeApi

        RuntimeApi(os.environ["AWS_LAMBDA_RUNTIME_API"]).post_init_error(
            shim_error(message, "Runtime.ExitError")
        )
    except Exception:  # noqa: BLE001 - best effort: the exit status tells Lambda anyway
        log.exception("could not report the init error")


def main(argv: list[str]) -> None:
    configure_logging()
    command = argv[1:]
    if not command:
        log.error("usage: shim.py <runtime command...> (normally started by the plldb wrapper)")
        sys.exit(2)
    use_layer_sys_path(command)
    try:
        from plldb.layer.loop import Shim

        shim = Shim.from_environ()
    except Exception as exc:  # noqa: BLE001 - whatever it is, the function must keep working
        log.error("debugging disabled (%s: %s): starting the function's own runtime", type(exc).__name__, exc)
        hand_over(command)
    log.info("debugging session %s: invocations go to the local debugger", shim.config.session_id)
    shim.run()
    log.info("the debugging session is over: handing over to the function's own runtime")
    hand_over(command)


if __name__ == "__main__":
    main(sys.argv)
