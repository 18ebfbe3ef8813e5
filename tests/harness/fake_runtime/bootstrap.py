"""Stand-in for the Python runtime's ``/var/runtime/bootstrap.py``.

Run by the container launcher as ``<python> bootstrap.py`` (possibly behind an exec
wrapper). Like the real one it puts the task root and the layers' Python folders in front of
``sys.path`` only when ``PYTHONPATH`` is unset, then hands over to the real ``awslambdaric``
with ``_HANDLER`` and ``AWS_LAMBDA_RUNTIME_API``. ``/opt`` is wherever the launcher extracted
the layers (``PLLDB_EMULATOR_OPT_DIR``).
"""

from __future__ import annotations

import os
import sys


def default_sys_path(task_root: str, opt_dir: str) -> list[str]:
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return [task_root, f"{opt_dir}/python", f"{opt_dir}/python/lib/{version}/site-packages"]


def main() -> None:
    if "PYTHONPATH" not in os.environ:
        opt_dir = os.environ.get("PLLDB_EMULATOR_OPT_DIR", "/opt")
        sys.path[0:0] = default_sys_path(os.environ["LAMBDA_TASK_ROOT"], opt_dir)
    from awslambdaric.__main__ import main as run_awslambdaric

    run_awslambdaric([sys.argv[0], os.environ["_HANDLER"]])


if __name__ == "__main__":
    main()
