"""Start-up of the `plldb` command: `--help` answers at once (issue 12, item 4).

Reported as a ratio against `python -c pass` measured in the same run, interleaved, so a
busy machine weighs on both alike: the figure that matters is what plldb adds to Python's
own start, not the absolute time. The target (≤ 0.3 s p50) holds on the reference machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import figure
from benchmarks.suite import Bench, interleaved

STARTUP_RUNS = 20
TARGET_SECONDS = 0.3
COMMANDS = (["--help"], ["status", "--help"])


def plldb_script() -> str:
    """The installed console script, as users start it."""
    return str(Path(sys.executable).with_name("plldb"))


def timed_run(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def startup(bench: Bench) -> None:
    """`plldb --help` and `plldb status --help` against `python -c pass`."""
    for args in COMMANDS:
        base, measured = interleaved(
            STARTUP_RUNS,
            lambda: timed_run([sys.executable, "-c", "pass"]),
            lambda args=args: timed_run([plldb_script(), *args]),
        )
        item = figure(
            "start-up",
            f"plldb {' '.join(args)} (baseline: python -c pass)",
            measured,
            base,
            target=f"≤ {TARGET_SECONDS * 1000:.0f} ms p50",
        )
        item.met = item.p50 <= TARGET_SECONDS * 1000
        bench.add(item)
