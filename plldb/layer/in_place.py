"""Running the function's own handler in the shim's process, as the runtime would.

An invocation nobody debugs (the session is over, or on a shared stage no route matches)
runs here, in the execution environment that received it: no new process, no extra cold
start, the handler's module imported once per environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

# The layers' root (``/opt`` in Lambda): this file is <opt>/plldb-shim/plldb/layer/in_place.py.
OPT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def use_runtime_sys_path(environ: MutableMapping[str, str]) -> None:
    """Put the function's code on ``sys.path`` like the runtime's bootstrap does.

    Precedence: task root, then (only when PYTHONPATH is unset) the layers' site-packages
    and ``/opt/python``: the standard locations of other layers, not of this one. ``/opt`` is
    where this layer was extracted (its parent folder), as for every layer of the function.
    """
    wanted = []
    task_root = environ.get("LAMBDA_TASK_ROOT")
    if task_root:
        wanted.append(task_root)
    if "PYTHONPATH" not in environ:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        wanted += [f"{OPT_DIR}/python/lib/python{version}/site-packages", f"{OPT_DIR}/python"]
    for path in reversed(wanted):
        if path not in sys.path:
            sys.path.insert(0, path)
