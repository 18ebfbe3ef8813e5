"""`python -m benchmarks` (`make bench`): every figure, on a local cloud started for the run.

Prints a table and writes JSON (default benchmarks/results/latest.json). Options:
``--quick`` (smoke-test counts), ``--only lifecycle,latency,payloads,throughput,memory,
passthrough,shared,startup,routes,recording``, ``--output PATH``. A selection of only
``routes`` and ``startup`` starts no local cloud: those figures are measured in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import report, startup, suite
from tests.harness.localcloud import LocalCloud, LocalCloudSettings

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"
GROUPS = (
    "lifecycle", "latency", "payloads", "throughput", "memory", "passthrough", "shared", "startup",
    "routes", "recording",
)
CLOUDLESS = frozenset({"routes", "startup"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few runs: a smoke test")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(GROUPS)}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("benchmarks").setLevel(logging.INFO)
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(GROUPS):
        parser.error(f"--only takes {', '.join(GROUPS)}")
    settings = suite.Settings.quick() if args.quick else suite.Settings()
    started = time.monotonic()
    cloud_settings = LocalCloudSettings(app_dir=None, max_containers=8)
    needs_cloud = not only or not only <= CLOUDLESS
    with (
        tempfile.TemporaryDirectory(prefix="plldb-bench-") as work,
        LocalCloud(cloud_settings) if needs_cloud else contextlib.nullcontext() as cloud,
    ):
        bench = suite.Bench(cloud, settings, Path(work))
        try:
            suite.run_all(bench, only)
            if not only or "startup" in only:
                startup.startup(bench)
        finally:
            report.print_table(bench.figures)
    report.write_json(
        bench.figures,
        args.output,
        {
            **dataclasses.asdict(settings),
            "only": sorted(only) if only else None,
            "seconds": round(time.monotonic() - started, 1),
        },
    )
    print(f"results written to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
