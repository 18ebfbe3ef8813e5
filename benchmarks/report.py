"""Figures: percentiles, baselines, targets; printed as a rich table and written as JSON."""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from plldb import __version__


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): with few runs p99 is simply the maximum."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figure:
    """One measured quantity; times in milliseconds unless ``unit`` says otherwise."""

    group: str
    name: str
    unit: str
    runs: int
    p50: float
    p99: float
    baseline_p50: float | None = None
    baseline_p99: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def added_p50(self) -> float | None:
        return None if self.baseline_p50 is None else self.p50 - self.baseline_p50

    @property
    def added_p99(self) -> float | None:
        return None if self.baseline_p99 is None else self.p99 - self.baseline_p99

    @property
    def ratio(self) -> float | None:
        if not self.baseline_p50:
            return None
        return self.p50 / self.baseline_p50

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(added_p50=self.added_p50, added_p99=self.added_p99, ratio=self.ratio)
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in data.items()}


def figure(
    group: str,
    name: str,
    samples: list[float],
    baseline: list[float] | None = None,
    *,
    unit: str = "ms",
    scale: float = 1000.0,
    **kwargs: Any,
) -> Figure:
    """A figure from samples in seconds (converted with ``scale``)."""
    values = [s * scale for s in samples]
    base = [s * scale for s in baseline] if baseline else None
    return Figure(
        group=group,
        name=name,
        unit=unit,
        runs=len(values),
        p50=percentile(values, 50),
        p99=percentile(values, 99),
        baseline_p50=percentile(base, 50) if base else None,
        baseline_p99=percentile(base, 99) if base else None,
        **kwargs,
    )


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def table(figures: list[Figure]) -> Table:
    out = Table(title="PLLDB benchmarks (local cloud)", show_lines=False)
    for column in (
        "Figure",
        "Runs",
        "p50",
        "p99",
        "Baseline p50/p99",
        "Added p50/p99",
        "Ratio",
        "Target",
    ):
        out.add_column(column, justify="left" if column in ("Figure", "Target") else "right")
    group = None
    for f in figures:
        if f.group != group:
            out.add_section()
            out.add_row(f"[bold]{f.group}[/bold]")
            group = f.group
        verdict = (
            "" if f.met is None else (" [green]met[/green]" if f.met else " [red]MISSED[/red]")
        )
        unit = f" {f.unit}"
        base = (
            f"{_fmt(f.baseline_p50)} / {_fmt(f.baseline_p99)}"
            if f.baseline_p50 is not None
            else "-"
        )
        added = f"{_fmt(f.added_p50)} / {_fmt(f.added_p99)}" if f.added_p50 is not None else "-"
        out.add_row(
            f"  {f.name}" + (f" [dim]({f.note})[/dim]" if f.note else ""),
            str(f.runs),
            _fmt(f.p50) + unit,
            _fmt(f.p99) + unit,
            base,
            added,
            _fmt(f.ratio, 2) + ("x" if f.ratio else ""),
            f.target + verdict,
        )
    return out


def write_json(figures: list[Figure], path: Path, settings: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "plldb_version": __version__,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": _cpus(),
        },
        "settings": settings,
        "figures": [f.as_dict() for f in figures],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def print_table(figures: list[Figure]) -> None:
    Console(width=200).print(table(figures))
