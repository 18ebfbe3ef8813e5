"""What plldb costs the invocations it does not debug: a function left with the layer and no
session (pass-through), and a shared stage's unrouted and mirrored invocations; plus the
route check itself. Each figure is measured against the same function without the layer,
interleaved in the same run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from benchmarks.harness import BENCH_STACK, Environments, PlldbProcess, interleaved, timed_invoke
from benchmarks.report import figure
from plldb import naming, route_table, routing
from tests.harness import aws_events

if TYPE_CHECKING:
    from benchmarks.suite import Bench


def passthrough(bench: Bench, instrumented: object) -> None:
    """Layer attached but no session vs no layer: cold start and warm invocation.

    Two cases with the layer: the wrapper with no session variable (``exec`` of the runtime),
    and the instrumentation's variables with the session closed (the window before the
    restore: the shim starts, sees the session closed, runs the handler, hands over).
    """
    envs = bench.environments
    name = bench.functions["Trivial"]
    plain = envs.spec(name)  # restored: no layer
    wrapper_only = dataclasses.replace(
        plain,
        layer_sha256s=instrumented.layer_sha256s,  # type: ignore[attr-defined]
        environment=((naming.ENV_EXEC_WRAPPER, naming.WRAPPER_PATH),),
    )
    variants = {
        "no layer": plain,
        "layer, no session": wrapper_only,
        "layer + variables, session closed": instrumented,
    }

    group = "pass-through cost (layer attached, no session)"
    compare_with_plain(bench, group, variants)


def compare_with_plain(bench: Bench, group: str, variants: dict[str, object],
                       payload: bytes = b"{}") -> None:
    """Cold start to first answer, and warm invocations, of each variant against the first
    (the function without the layer), interleaved."""
    envs = bench.environments
    colds = interleaved(bench.settings.passthrough_cold_runs,
                        *(cold_start(envs, spec, payload) for spec in variants.values()))
    labels = list(variants)[1:]
    for label, samples in zip(labels, colds[1:], strict=True):
        bench.add(figure(group, f"cold start to first answer: {label} vs no layer", samples, colds[0]))
    slots = [envs.start(spec) for spec in variants.values()]  # type: ignore[arg-type]
    try:
        for slot in slots:
            for _ in range(3):
                timed_invoke(slot, payload)
        warms = interleaved(
            bench.settings.passthrough_warm_runs,
            *(lambda s=s: timed_invoke(s, payload)[0] for s in slots),
        )
    finally:
        for slot in slots:
            slot.stop()
    for label, samples in zip(labels, warms[1:], strict=True):
        bench.add(figure(group, f"warm invocation: {label} vs no layer", samples, warms[0]))


def cold_start(envs: Environments, spec: object, payload: bytes) -> Callable[[], float]:
    """Seconds from starting a new execution environment to its first answer."""
    def run() -> float:
        started = time.perf_counter()
        slot = envs.start(spec)  # type: ignore[arg-type]
        try:
            timed_invoke(slot, payload)
            return time.perf_counter() - started
        finally:
            slot.stop()

    return run


# --------------------------------------------------------------------------- shared stage

ROUTE_SESSIONS = (1, 5, 20)
# A REST API proxy event of about 2 KB (a browser's headers, twice: headers and
# multiValueHeaders) plus the x-debug-user header the routes look at.
ROUTE_HEADERS = aws_events.BROWSER_HEADERS[:10]


def route_check(bench: Bench) -> None:
    """What the shim adds to every invocation on a shared stage: the view of the invocation
    and :func:`plldb.route_table.choose` over the route table, each session one header route
    with a value of its own. The baseline is the view alone (a stage with no route table),
    interleaved. Each run is a new view, so each pays its own parse of the event."""
    for count in ROUTE_SESSIONS:
        table = [
            route_table.Entry(f"s-{n:02d}", (routing.Route.parse(f"header:x-debug-user=dev-{n}"),),
                          n, "bench", False)
            for n in range(1, count + 1)
        ]
        for case, user, taker in (
            ("the last session matches", f"dev-{count}", table[-1]),
            ("no session matches", "nobody", None),
        ):
            raw = aws_events.encoded(
                aws_events.rest_event(ROUTE_HEADERS + [("X-Debug-User", user)])
            )
            assert route_table.choose(table, routing.InvocationView(raw, None, "r")).debug is taker

            def view_only(raw: bytes = raw) -> float:
                started = time.perf_counter()
                routing.InvocationView(raw, None, "8f5b4e2a-0d3c-4c1e-9a0b-1c2d3e4f5a6b")
                return time.perf_counter() - started

            def view_and_choose(raw: bytes = raw, table: list = table) -> float:
                started = time.perf_counter()
                view = routing.InvocationView(raw, None, "8f5b4e2a-0d3c-4c1e-9a0b-1c2d3e4f5a6b")
                route_table.choose(table, view)
                return time.perf_counter() - started

            interleaved(1000, view_only, view_and_choose)  # warm: caches, branch history
            base, measured = interleaved(bench.settings.route_runs, view_only, view_and_choose)
            bench.add(
                figure(
                    "route check (per invocation on a shared stage)",
                    f"{count} session(s), {case}: choose() vs view alone",
                    measured,
                    base,
                    unit="µs",
                    scale=1e6,
                    note=f"{len(raw)} B REST API event",
                )
            )


def shared_stage(bench: Bench) -> None:
    """A shared stage's cost to the invocations nobody debugs, through the real path: a
    `plldb attach --route` that matches nothing the benchmark sends (then with 4 and 19 more
    sessions' entries in the route table), and a `plldb attach --mirror`."""
    envs = bench.environments
    name = bench.functions["Trivial"]
    plain = envs.spec(name)
    group = "shared stage: unrouted and mirrored invocations"
    assert bench.app_dir is not None and bench.cloud is not None
    with PlldbProcess(bench.cloud, bench.app_dir, "--function", "Trivial",
                      "--route", "header:x-debug-user=nobody") as plldb:
        plldb.wait_attached()
        routed = envs.spec(name)
        assert dict(routed.environment)[naming.ENV_SESSION_ID] == naming.stack_lock_key(BENCH_STACK)
        compare_with_plain(bench, group, {"no layer": plain, "unrouted, 1 session": routed})
        for sessions in ROUTE_SESSIONS[1:]:
            with extra_entries(bench, sessions - 1):
                compare_with_plain(bench, group, {"no layer": plain,
                                                  f"unrouted, {sessions} sessions": routed})
        plldb.detach()
    with PlldbProcess(bench.cloud, bench.app_dir, "--function", "Trivial", "--mirror") as plldb:
        plldb.wait_attached()
        mirrored = envs.spec(name)
        compare_with_plain(bench, group, {"no layer": plain, "mirror (caller's latency)": mirrored})
        plldb.wait_line(lambda line: "mirror " in line and ": same" in line, 60)
        plldb.detach()


@contextlib.contextmanager
def extra_entries(bench: Bench, count: int) -> Iterator[None]:
    """``count`` more sessions' entries in the bench stack's route table (routes that match
    nothing the benchmark sends), written with the harness's credentials."""
    dynamodb = bench.clients.dynamodb
    key = {naming.A_SESSION_ID: {"S": naming.stack_lock_key(BENCH_STACK)}}
    ids = [f"bench-{i:02}" for i in range(count)]
    for i, session_id in enumerate(ids):
        entry = route_table.entry_attribute([f"header:x-debug-user=colleague-{i}"], i, "arn:bench", False)
        dynamodb.update_item(TableName=naming.SESSIONS_TABLE, Key=key,
                             UpdateExpression="SET #r.#s = :e",
                             ExpressionAttributeNames={"#r": naming.A_ROUTES, "#s": session_id},
                             ExpressionAttributeValues={":e": entry})
    try:
        yield  # compare_with_plain starts new environments: each reads the table first
    finally:
        for session_id in ids:
            dynamodb.update_item(TableName=naming.SESSIONS_TABLE, Key=key,
                                 UpdateExpression="REMOVE #r.#s",
                                 ExpressionAttributeNames={"#r": naming.A_ROUTES, "#s": session_id})
