"""`plldb attach`, run: create the session, connect, and serve invocations until Ctrl-C.

The plan comes first (:mod:`plldb.session.plan`: find everything, check everything, change
nothing); :class:`Attachment` runs it. Serving the invocations themselves is
:mod:`plldb.session.serving`.

Threading model: one asyncio loop, on the main thread, owns the WebSocket; handlers run on
the executor's worker threads and hand their outcome back with ``call_soon_threadsafe``, so a
handler paused on a breakpoint never stalls pings, other invocations or Ctrl-C. That holds
under a debugger too: plldb's own threads are marked so that pydevd never suspends them, even
with its "suspend all threads" default (:mod:`plldb.local.debuggers`).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.markup import escape

from plldb import console, limits, naming, routing
from plldb import protocol as p
from plldb.cloud.aws import AwsContext
from plldb.local.debuggers import (
    client_gate,
    connect_pycharm,
    keep_main_thread_running,
    mark_current_thread,
    start_debugpy,
)
from plldb.local.executor import Executor
from plldb.session import payloads
from plldb.session.claims import claim_functions, release_claims
from plldb.session.connect_url import check_length
from plldb.session.connection import Connection
from plldb.session.identity import identity_proof
from plldb.session.plan import AttachOptions, AttachPlan
from plldb.session.serving import InvocationServing
from plldb.session.sessions import SessionLost, SessionStore

log = logging.getLogger(__name__)

DETACH_WAIT_SECONDS = 300
RESTORE_POLL_SECONDS = 1.0


def instrumentation_problem(summary_message: dict[str, Any]) -> str | None:
    """Why attaching is pointless after the manager's final message, or None when it is not.

    The manager failed outright (status "failed"), or it instrumented no function at all
    (every one skipped or failed): waiting for invocations would wait forever.
    """
    if summary_message.get("status") == "failed":
        return f"instrumentation failed: {summary_message['message']}"
    summary = summary_message.get("summary") or {}
    if not summary.get("instrumented"):
        return "no function could be instrumented"
    return None


def print_routes(options: AttachOptions) -> None:
    """On a shared stage: how to reach this session, and what happens to the rest."""
    for route in routing.parse_routes(options.routes):
        console.info(escape(f"route {route}: {route.hint()}"))
    if options.mirror:
        console.info("mirror: the deployed code answers the caller; a copy of each invocation "
                     "(and the cloud's result) runs here afterwards, and the difference is shown")
    if options.routes:
        console.info(
            "invocations your routes do not match run as deployed, or reach a colleague whose "
            "routes match (plldb status lists every route); routes reach every execution "
            f"environment within {limits.ROUTE_TABLE_STALE_SECONDS:g} s")


class Attachment(InvocationServing):
    """A running attach: one session, one connection, one executor."""

    def __init__(self, ctx: AwsContext, options: AttachOptions, plan: AttachPlan) -> None:
        self.ctx = ctx
        self.options = options
        self.plan = plan
        self.store = SessionStore(plan.debugger_ctx, plan.helper.sessions_table)
        self.executor = Executor(plan.functions, credentials=options.credentials)
        self.session_id = ""
        self.payload_place = payloads.place_of(ctx, plan.helper.payload_bucket)
        self.redirects_named: set[tuple[str, tuple[str, ...]]] = set()
        self.connection: Connection | None = None
        self.answers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.running: set[str] = set()
        self.detaching = False
        self.exit_code = 0
        self.detached: dict[str, Any] | None = None
        self.finished = asyncio.Event()
        self.gate = threading.Event()
        self.gate.set()

    # -- lifecycle ---------------------------------------------------------------------

    def start_debuggers(self) -> None:
        """Before any user module is imported, so breakpoints bind on first load.

        Always called: the main thread is marked first, for a debugger started here as for
        one injected later by PID (PyCharm's Attach to Process).
        """
        keep_main_thread_running()
        if self.options.debugpy:
            start_debugpy(self.options.debugpy)
            self.gate = client_gate(self.options.debugpy)  # after listen: it waits for a client
        if self.options.pycharm:
            connect_pycharm(*self.options.pycharm)

    async def run(self) -> int:
        """Attach, serve invocations until detached; returns the exit code."""
        loop = asyncio.get_running_loop()
        loop.set_default_executor(  # asyncio.to_thread's workers are plldb's own threads
            ThreadPoolExecutor(thread_name_prefix="plldb-io", initializer=mark_current_thread)
        )
        self.session_id = str(uuid.uuid4())
        await self.claim_and_connect()
        console.info(f"session {self.session_id} opened for stack {self.options.stack_name}")
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.on_interrupt)
        runner = asyncio.create_task(self.connection.run())
        finished = asyncio.create_task(self.finished.wait())
        await asyncio.wait({runner, finished}, return_when=asyncio.FIRST_COMPLETED)
        if runner.done() and runner.exception():
            failure = runner.exception()
            if not (self.detaching and isinstance(failure, SessionLost)):
                raise failure  # type: ignore[misc]
            await self.await_restore_without_connection()
        await self.connection.close()
        runner.cancel()
        self.executor.shutdown()
        return self.report_detached()

    async def claim_and_connect(self) -> None:
        """Claim the functions with the developer's credentials, then connect.

        Claims come first: the manager, started by ``$connect``, instruments only claimed
        functions. If connecting fails, the claims are withdrawn, so the stack is left as it
        was (no session exists: the authorizer creates it only for a connect it allows).
        """
        functions = sorted(self.plan.functions)
        check_length(self.plan.helper.websocket_url, self.connect_query())
        self.connection = Connection(
            self.plan.helper.websocket_url,
            self.connect_query(),
            self.on_message,
            headers=self.identity_headers,
            check_live=lambda: self.store.ensure_live(self.session_id),
        )
        shared = self.options.shared
        await asyncio.to_thread(
            claim_functions, self.ctx, self.plan.caller_arn, self.session_id, functions, shared
        )
        try:
            await self.connection.open()
        except BaseException:
            await asyncio.to_thread(release_claims, self.ctx, self.plan.caller_arn, functions,
                                    self.session_id, shared)
            raise

    def identity_headers(self) -> dict[str, str]:
        """A fresh proof for every connect (each is single-use, and valid for minutes)."""
        proof = identity_proof(self.ctx, self.session_id, self.plan.helper.management_url)
        return {naming.IDENTITY_HEADER: proof}

    def connect_query(self) -> dict[str, str]:
        """The session and what it asks for; the authorizer creates it from this."""
        query = {"sessionId": self.session_id, naming.Q_STACK_NAME: self.options.stack_name}
        if self.plan.function_filters:
            query[naming.Q_FUNCTIONS] = ",".join(self.plan.function_filters)
        if self.options.named:
            query[naming.Q_NAMES] = ",".join(sorted(self.plan.functions))
        if self.options.timeout is not None:
            query[naming.Q_TIMEOUT] = str(self.options.timeout)
        if self.options.force:
            query[naming.Q_FORCE] = "1"
        if self.options.routes:
            query[naming.Q_ROUTES] = json.dumps(list(self.options.routes))
        if self.options.mirror:
            query[naming.Q_MIRROR] = "1"
        return query

    def on_interrupt(self) -> None:
        """First Ctrl-C detaches and waits; a second one exits at once."""
        if self.detaching:
            console.warn("exiting without waiting: the helper stack restores the functions")
            os._exit(130)
        console.info("detaching: restoring the stack (Ctrl-C again to exit at once)")
        self.start_detach()

    def start_detach(self) -> None:
        """Ask the helper stack to restore, once (Ctrl-C or nothing instrumented)."""
        if not self.detaching:
            self.detaching = True
            asyncio.get_running_loop().create_task(self.detach())

    async def detach(self) -> None:
        assert self.connection is not None
        await self.connection.send({"action": p.ACTION_DETACH})
        try:
            await asyncio.wait_for(self.finished.wait(), DETACH_WAIT_SECONDS)
        except asyncio.TimeoutError:
            console.error(
                f"no confirmation from the helper stack within {DETACH_WAIT_SECONDS}s: "
                f"run `plldb detach --stack-name {self.options.stack_name}`"
            )
            self.finished.set()

    async def await_restore_without_connection(self) -> None:
        """The detach closed the session and the connection dropped before its confirmation.

        The manager restores after closing the session, so its records of this session
        disappear once the restore is done: wait (bounded) for that instead of a reply that
        can no longer arrive.
        """
        console.info("the connection closed during the detach: waiting for the restore")
        deadline = time.monotonic() + DETACH_WAIT_SECONDS
        while time.monotonic() < deadline:
            records = await asyncio.to_thread(self.session_records)
            if not records:
                self.detached = {"restored": sorted(self.plan.functions), "failed": []}
                return
            await asyncio.sleep(RESTORE_POLL_SECONDS)
        console.error(
            f"the stack was not restored within {DETACH_WAIT_SECONDS}s: "
            f"run `plldb detach --stack-name {self.options.stack_name}`"
        )

    def session_records(self) -> list[Any]:
        """This session's instrumentation records that are still in the table."""
        records = self.store.contents(self.options.stack_name)[1]
        return [r for r in records if r.session_id == self.session_id]

    def report_detached(self) -> int:
        if not self.detached:
            return 1
        restored = self.detached.get("restored", [])
        failed = self.detached.get("failed", [])
        if self.detached.get("remaining"):
            console.success(
                f"detached: left the shared stage of {self.options.stack_name}; "
                f"{self.detached['remaining']} other session(s) remain, so its functions stay "
                "instrumented until the last one leaves")
            return self.exit_code
        console.success(f"detached: {len(restored)} function(s) restored")
        for name in failed:
            console.error(f"not restored: {name}")
        return 1 if failed else self.exit_code

    # -- messages ------------------------------------------------------------------------

    async def on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == p.TYPE_INVOCATION:
            await self.on_invocation(message)
        elif kind == p.TYPE_MIRROR:
            await self.on_mirror(message)
        elif kind == p.TYPE_PROGRESS:
            self.on_progress(message)
        elif kind == p.TYPE_LOG:
            console.info(f"[dim]{message['level']}: {message['message']}[/dim]")
        elif kind == p.TYPE_REJECTED:
            self.on_rejected(message["reason"])
        elif kind == p.TYPE_DETACHED:
            self.detached = message
            self.finished.set()

    def on_rejected(self, reason: str) -> None:
        """A refused answer is, in practice, one that came after the caller was answered."""
        late = next((request_id for request_id in self.answers if request_id in reason), None)
        if late is None:
            console.warn(escape(f"the helper stack refused a message: {reason}"))
            return
        console.warn(
            f"{late}: answered too late, the function had already returned a timeout error to "
            "its caller (a longer --timeout gives more time at a breakpoint)"
        )

    def on_progress(self, message: dict[str, Any]) -> None:
        status = message.get("status", "ok")
        function = message.get("function")
        if status == "skipped" and function in self.plan.skipped:
            return  # warned about once already, while planning
        text = f"{function}: {message['message']}" if function else message["message"]
        if status == "ok":
            console.success(text)
        elif status == "skipped":
            console.warn(text)
        elif status == "failed":
            console.error(text)
        elif status == "warning":
            console.warn(text)
        else:
            console.info(text)
        if message.get("done") and message["phase"] == "instrument":
            problem = instrumentation_problem(message)
            if self.detaching:  # a reconnect's re-instrument, overtaken by Ctrl-C: moot
                return
            if problem is None:
                print_routes(self.options)
                console.info("[bold]attached[/bold]: waiting for invocations (Ctrl-C to detach)")
                return
            console.error(f"{problem}: detaching")
            self.exit_code = 1
            self.start_detach()
