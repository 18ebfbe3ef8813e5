"""The measurements. Each function appends :class:`~benchmarks.report.Figure` values.

Baselines are measured in the same run, interleaved with the measured path (one baseline
invocation, one debugged invocation, ...) so that a neighbour's load on a shared machine
weighs on both alike.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from benchmarks import environments, harness
from benchmarks.harness import (
    BENCH_STACK,
    Clients,
    Environments,
    PlldbProcess,
    interleaved,
    timed_invoke,
)
from benchmarks.report import Figure, figure
from tests.harness.localcloud import LocalCloud

log = logging.getLogger(__name__)

KB = 1024
MB = 1024 * KB
PAYLOAD_SIZES = {"100 KB": 100 * KB, "1 MB": MB, "6 MB": 6 * MB}
LIFECYCLE_SIZES = (1, 10, 30)
BENCH_FUNCTIONS = ("Trivial", "Sized")  # attached
PLAIN_FUNCTIONS = ("TrivialPlain", "SizedPlain")  # same code, never attached: baselines


@dataclass
class Settings:
    """Run counts; ``quick()`` gives a smoke-test run of the whole suite."""

    latency_runs: int = 300
    payload_runs: dict[str, int] = field(
        default_factory=lambda: {"100 KB": 40, "1 MB": 20, "6 MB": 10}
    )
    lifecycle_runs: int = 3
    concurrency: int = 100
    passthrough_cold_runs: int = 10
    passthrough_warm_runs: int = 100
    route_runs: int = 20000

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            latency_runs=30,
            payload_runs={"100 KB": 5, "1 MB": 3, "6 MB": 2},
            lifecycle_runs=1,
            concurrency=20,
            passthrough_cold_runs=2,
            passthrough_warm_runs=10,
            route_runs=2000,
        )


@dataclass
class Bench:
    cloud: LocalCloud | None  # None: only figures that need no cloud (routes, startup)
    settings: Settings
    work_dir: Path
    figures: list[Figure] = field(default_factory=list)
    clients: Clients = field(init=False)
    environments: Environments = field(init=False)
    functions: dict[str, str] = field(default_factory=dict)  # logical -> physical (bench app)
    app_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.cloud is not None:
            self.clients = Clients(self.cloud)
            self.environments = Environments(self.cloud)

    def add(self, item: Figure) -> None:
        log.info(
            "%s / %s: p50 %.1f p99 %.1f %s", item.group, item.name, item.p50, item.p99, item.unit
        )
        self.figures.append(item)


# --------------------------------------------------------------------------- setup


def deploy_bench_app(bench: Bench) -> None:
    sources = {
        "Trivial": harness.TRIVIAL_HANDLER,
        "TrivialPlain": harness.TRIVIAL_HANDLER,
        "Sized": harness.SIZED_HANDLER,
        "SizedPlain": harness.SIZED_HANDLER,
    }
    bench.app_dir = harness.write_app(bench.work_dir / "bench-app", sources, BENCH_STACK)
    bench.functions = harness.deploy_app(bench.cloud, bench.app_dir, BENCH_STACK)


def lifecycle_app(bench: Bench, count: int) -> tuple[Path, str, list[str]]:
    stack = f"plldb-bench-n{count}"
    sources = {f"Function{i:02d}": harness.TRIVIAL_HANDLER for i in range(1, count + 1)}
    app_dir = harness.write_app(bench.work_dir / f"n{count}-app", sources, stack)
    functions = harness.deploy_app(bench.cloud, app_dir, stack)
    return app_dir, stack, sorted(functions.values())


# --------------------------------------------------------------------------- lifecycle


def attach_and_detach(bench: Bench) -> None:
    """Attach (until every function is instrumented) and detach (until restored)."""
    for count in LIFECYCLE_SIZES:
        app_dir, stack, names = lifecycle_app(bench, count)
        before = harness.stack_state(bench.clients, names)
        totals, instrumentation, detaches, startup = [], [], [], []
        for _ in range(bench.settings.lifecycle_runs):
            with PlldbProcess(bench.cloud, app_dir) as plldb:
                totals.append(plldb.wait_attached(timeout=300))
                session_at = plldb.line_time("opened for stack")
                assert session_at is not None
                startup.append(session_at)
                instrumentation.append(totals[-1] - session_at)
                if not all(harness.is_instrumented(bench.clients, n) for n in names):
                    raise AssertionError(f"'attached' printed before {stack} was instrumented")
                detaches.append(plldb.detach(timeout=300))
            if harness.stack_state(bench.clients, names) != before:
                raise AssertionError(f"{stack} differs from before attach after detach")
        target = "≤ 3000 ms" if count == 30 else ""
        bench.add(
            figure(
                "attach / detach",
                f"{count} function(s): attach, command start to 'attached'",
                totals,
                target=target,
                met=(max(totals) <= 3.0) if count == 30 else None,
            )
        )
        bench.add(
            figure(
                "attach / detach",
                f"{count} function(s): instrumentation only (session created to 'attached')",
                instrumentation,
            )
        )
        bench.add(
            figure(
                "attach / detach",
                f"{count} function(s): CLI start + plan (to session created)",
                startup,
            )
        )
        bench.add(
            figure(
                "attach / detach",
                f"{count} function(s): detach (Ctrl-C to restored, byte-identical)",
                detaches,
            )
        )


# --------------------------------------------------------------------------- attached


class MemorySampler:
    """Peak resident memory of a process while a block runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(0.02)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / MB


def added_latency(bench: Bench, plldb: PlldbProcess, baseline: dict[str, object]) -> None:
    """Trivial handler: awslambdaric directly vs through plldb, both in the emulator."""
    envs = bench.environments
    debugged = envs.spec(bench.functions["Trivial"])
    with envs.running(baseline["Trivial"]) as plain, envs.running(debugged) as shimmed:
        for slot in (plain, shimmed):  # cold starts and first imports are not measured
            for _ in range(3):
                timed_invoke(slot, b"{}")
        base, through = interleaved(
            bench.settings.latency_runs,
            lambda: timed_invoke(plain, b"{}")[0],
            lambda: timed_invoke(shimmed, b"{}")[0],
        )
    item = figure(
        "added latency (warm, trivial handler)",
        "Runtime API invoke: awslambdaric direct vs through plldb",
        through,
        base,
        target="≤ +25 ms p50, ≤ +100 ms p99",
    )
    item.met = (item.added_p50 or 0) <= 25 and (item.added_p99 or 0) <= 100
    bench.add(item)
    # The same through Lambda's Invoke API (boto3 -> the local cloud's Lambda front).
    clients = bench.clients
    plain_name, debugged_name = bench.functions["TrivialPlain"], bench.functions["Trivial"]
    for name in (plain_name, debugged_name):
        for _ in range(3):
            clients.invoke(name, b"{}")
    base, through = interleaved(
        max(20, bench.settings.latency_runs // 3),
        lambda: _timed_front(clients, plain_name, b"{}"),
        lambda: _timed_front(clients, debugged_name, b"{}"),
    )
    bench.add(
        figure(
            "added latency (warm, trivial handler)",
            "boto3 lambda.invoke end to end: no layer vs attached",
            through,
            base,
        )
    )


def _timed_front(clients: Clients, name: str, payload: bytes) -> float:
    started = time.perf_counter()
    body, error = clients.invoke(name, payload)
    elapsed = time.perf_counter() - started
    if error:
        raise RuntimeError(f"{name} failed: {body[:300]!r}")
    return elapsed


def sized_event(size: int) -> bytes:
    """A JSON event of exactly ``size`` bytes."""
    empty = len(json.dumps({"pad": ""}).encode())
    return json.dumps({"pad": "x" * (size - empty)}).encode()


def response_request(size: int) -> bytes:
    return json.dumps({"response_size": size}).encode()


def both_ways(size: int) -> bytes:
    empty = len(json.dumps({"response_size": size, "pad": ""}).encode())
    return json.dumps({"response_size": size, "pad": "x" * (size - empty)}).encode()


def payloads(bench: Bench, plldb: PlldbProcess, baseline: dict[str, object]) -> float:
    """100 KB, 1 MB, 6 MB events, responses and both; returns plldb's peak RSS in MB."""
    envs = bench.environments
    debugged = envs.spec(bench.functions["Sized"])
    cases = {
        "event": sized_event,
        "response": response_request,
        "event + response": both_ways,
    }
    with (
        envs.running(baseline["Sized"]) as plain,
        envs.running(debugged) as shimmed,
        MemorySampler(plldb.pid) as memory,
    ):
        for slot in (plain, shimmed):
            timed_invoke(slot, b"{}")
        for label, size in PAYLOAD_SIZES.items():
            for direction, make in cases.items():
                payload = make(size)
                runs = bench.settings.payload_runs[label]
                base, through = interleaved(
                    runs,
                    lambda payload=payload: _checked(plain, payload),
                    lambda payload=payload: _checked(shimmed, payload),
                )
                six_mb = size == 6 * MB
                item = figure(
                    f"payloads (warm, {label})",
                    f"{direction}: direct vs through plldb",
                    through,
                    base,
                    target="≤ 1000 ms" if six_mb else "",
                )
                if six_mb:
                    item.met = item.p99 <= 1000
                bench.add(item)
    return memory.peak / MB


def _checked(slot: object, payload: bytes) -> float:
    elapsed, body = timed_invoke(slot, payload)  # type: ignore[arg-type]
    wanted = json.loads(payload).get("response_size", 0)
    if wanted and len(body) != wanted:
        raise RuntimeError(f"response of {len(body)} bytes instead of {wanted}")
    return elapsed


def throughput(bench: Bench, plldb: PlldbProcess) -> float:
    """N concurrent invocations over 2 functions through Lambda's Invoke API; peak RSS."""
    # The Lambda front's HTTP server listens with Python's default backlog of 5: under 100
    # simultaneous connects a few are reset before the request is read. boto3's own retry
    # (standard mode, as every SDK client has it) covers that; the retries are reported.
    clients = harness.Clients(bench.cloud, max_attempts=3)
    count = bench.settings.concurrency

    def burst(names: tuple[str, str]) -> tuple[float, list[float]]:
        calls = [(names[i % 2], json.dumps({"i": i}).encode()) for i in range(count)]
        started = time.perf_counter()
        with ThreadPoolExecutor(count) as pool:
            latencies = list(pool.map(lambda c: _timed_front(clients, *c), calls))
        return time.perf_counter() - started, latencies

    plain = (bench.functions["TrivialPlain"], bench.functions["SizedPlain"])
    attached = (bench.functions["Trivial"], bench.functions["Sized"])
    group = f"throughput ({count} concurrent invocations over 2 functions, all answered)"
    cold_base, _ = burst(plain)
    with MemorySampler(plldb.pid) as memory:
        cold, _ = burst(attached)
        warm_walls, warm_latencies, base_walls, base_latencies = [], [], [], []
        for _ in range(3):
            wall, latencies = burst(plain)
            base_walls.append(wall)
            base_latencies += latencies
            wall, latencies = burst(attached)
            warm_walls.append(wall)
            warm_latencies += latencies
    bench.add(
        figure(
            group,
            "wall time, first burst (cold environments)",
            [cold],
            [cold_base],
            note=f"{clients.retries} connection retries by boto3 in all bursts",
        )
    )
    bench.add(figure(group, "wall time, warm bursts", warm_walls, base_walls))
    bench.add(
        figure(group, "per-invocation latency in warm bursts", warm_latencies, base_latencies)
    )
    return memory.peak / MB


def memory_figures(bench: Bench, idle_mb: float, payload_mb: float, load_mb: float) -> None:
    group = "plldb resident memory (RSS of the `plldb attach` process)"
    for name, value in (
        ("idle, attached to 2 functions", idle_mb),
        ("peak under load (concurrent burst)", load_mb),
        ("peak with 6 MB payloads", payload_mb),
    ):
        bench.add(figure(group, name, [value], unit="MB", scale=1.0))


# --------------------------------------------------------------------------- all


def run_all(bench: Bench, only: set[str] | None = None) -> None:
    """Every benchmark (or those named in ``only``), in an order that shares one attach."""

    def wanted(name: str) -> bool:
        return not only or name in only

    if wanted("routes"):
        environments.route_check(bench)
    if wanted("recording"):
        from benchmarks.recording import recording  # it builds on this module

        recording(bench)
    if wanted("lifecycle"):
        attach_and_detach(bench)
    if not any(wanted(n) for n in ("latency", "payloads", "throughput", "memory", "passthrough",
                                   "shared")):
        return
    deploy_bench_app(bench)
    assert bench.app_dir is not None
    envs = bench.environments
    baseline = {name: envs.spec(bench.functions[name]) for name in BENCH_FUNCTIONS}
    args = [arg for name in BENCH_FUNCTIONS for arg in ("--function", name)]
    with PlldbProcess(bench.cloud, bench.app_dir, *args) as plldb:
        plldb.wait_attached()
        for name in BENCH_FUNCTIONS:
            bench.clients.invoke(bench.functions[name], b"{}")  # handler modules imported
        time.sleep(1.0)
        idle_mb = rss_mb(plldb.pid)
        instrumented = envs.spec(bench.functions["Trivial"])
        if wanted("latency"):
            added_latency(bench, plldb, baseline)
        payload_mb = payloads(bench, plldb, baseline) if wanted("payloads") else float("nan")
        load_mb = throughput(bench, plldb) if wanted("throughput") else float("nan")
        memory_figures(bench, idle_mb, payload_mb, load_mb)
        plldb.detach()
    if wanted("passthrough"):
        environments.passthrough(bench, instrumented)
    if wanted("shared"):
        environments.shared_stage(bench)
