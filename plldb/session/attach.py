"""`plldb attach`: plan (find everything, check everything) then run (session + connection).

Split like Chalice's deploy: :func:`plan_attach` makes no change anywhere and fails with a
clear error on bad input (no helper stack, no such stack, template that doesn't match);
:class:`Attachment` then creates the session, connects, and serves invocations until Ctrl-C.

Threading model: one asyncio loop, on the main thread, owns the WebSocket; handlers run on
the executor's worker threads and hand their outcome back with ``call_soon_threadsafe``, so a
handler paused on a breakpoint never stalls pings, other invocations or Ctrl-C. That holds
under a debugger too: plldb's own threads are marked so that pydevd never suspends them, even
with its "suspend all threads" default (:mod:`plldb.local.debuggers`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import signal
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.markup import escape

from plldb import console, limits, naming
from plldb import protocol as p
from plldb.capture import records
from plldb.cloud.aws import AwsContext, caller_identity, error_code
from plldb.cloud.helper_stack import HelperStack, find_helper_stack
from plldb.local.debuggers import (
    DebugpyOptions,
    client_gate,
    connect_pycharm,
    keep_main_thread_running,
    mark_current_thread,
    start_debugpy,
)
from plldb.local.executor import Executor
from plldb.project.by_name import NamedCode, discover_by_name
from plldb.project.discovery import discover
from plldb.project.model import Discovery, LocalFunction
from plldb.project.stack_mapping import collect_stack_resources, map_stack_functions
from plldb.session import payloads
from plldb.session.claims import claim_functions, release_claims
from plldb.session.connection import Connection
from plldb.session.identity import identity_proof
from plldb.session.sessions import SessionConflict, SessionLost, SessionStore

log = logging.getLogger(__name__)

ANSWER_CACHE = 1000  # answers kept to resend when the shim reposts after a reconnect
DETACH_WAIT_SECONDS = 300
RESTORE_POLL_SECONDS = 1.0
GATE_POLL_SECONDS = 0.1
BINARY_RESULT_ERROR = {
    "errorMessage": "the handler returned bytes that are not UTF-8 text; plldb carries JSON "
    "and text results only (return base64 text, as API Gateway integrations expect)",
    "errorType": "PLLDB.BinaryResult",
    "stackTrace": [],
}


def payload_error(exc: Exception) -> dict[str, Any]:
    """What the function answers when its event or result could not travel through the bucket."""
    return {"errorMessage": str(exc), "errorType": "PLLDB.PayloadError", "stackTrace": []}


@dataclass(frozen=True)
class AttachOptions:
    stack_name: str
    template: Path
    functions: tuple[str, ...] = ()
    timeout: int | None = None
    debugpy: DebugpyOptions | None = None
    pycharm: tuple[str, int] | None = None
    force: bool = False
    credentials: str = "function"
    stage: str | None = None  # Serverless Framework stage
    cdk_out: Path | None = None  # a CDK app's synthesized folder, when not cdk.out
    named: tuple[NamedCode, ...] = ()  # functions by name (no stack): stack_name is their key


@dataclass
class AttachPlan:
    helper: HelperStack
    functions: dict[str, LocalFunction]
    caller_arn: str  # who attaches: recorded in the session, shown to a second attach
    debugger_ctx: AwsContext  # the debugger role, assumed once while planning
    warnings: list[str] = field(default_factory=list)
    skipped: frozenset[str] = frozenset()  # physical names already warned about
    project: Discovery | None = None  # what discovery found (kind, files read), for messages


class StackNotFound(Exception):
    """The target stack does not exist in this account and region."""


class NothingToDebug(Exception):
    """The stack (or the --function filter) leaves no Python function to run locally."""


def plan_attach(ctx: AwsContext, options: AttachOptions, project: Discovery | None = None) -> AttachPlan:
    """Everything attach needs, found and checked without changing anything.

    A stack attached by someone else is refused here (unless --force), before anything is
    printed or started; :meth:`SessionStore.create` checks again against a race. ``project``
    is the discovery already read (to find the stack name), else it is read here.
    """
    caller_arn = caller_identity(ctx)["Arn"]
    helper = find_helper_stack(ctx)
    debugger_ctx = ctx.assumed(helper.debugger_role_arn, "plldb-attach")
    if not options.force:
        SessionStore(debugger_ctx, helper.sessions_table).refuse_if_attached(options.stack_name)
    if options.named:
        if not options.force:
            refuse_if_debugged(SessionStore(debugger_ctx, helper.sessions_table),
                               [n.name for n in options.named])
        discovery = discover_by_name(ctx, list(options.named))
        return AttachPlan(helper=helper, functions=discovery.functions, caller_arn=caller_arn,
                          debugger_ctx=debugger_ctx, warnings=list(discovery.warnings),
                          project=discovery)
    discovery = project or discover(options.template, stack_name=options.stack_name,
                                    stage=options.stage, cdk_out=options.cdk_out)
    resources = collect_stack_resources(
        lambda stack: list_stack_resources(ctx, stack), options.stack_name
    )
    mapping = map_stack_functions(discovery, resources)
    functions = select_functions(mapping.functions, options.functions)
    if not functions:
        raise NothingToDebug(describe_nothing_to_debug(options, mapping.skipped))
    if not options.force:  # a session by name may debug one of the stack's functions
        refuse_if_debugged(SessionStore(debugger_ctx, helper.sessions_table), list(functions))
    warnings = list(discovery.warnings)
    warnings += [f"{name}: not debugged ({why})" for name, why in mapping.skipped.items()]
    return AttachPlan(helper=helper, functions=functions, caller_arn=caller_arn,
                      debugger_ctx=debugger_ctx, warnings=warnings,
                      skipped=frozenset(mapping.skipped), project=discovery)


def refuse_if_debugged(store: SessionStore, names: list[str]) -> None:
    """SessionConflict when a live session (of a stack, or of a set of names) has
    instrumented one of ``names``: claiming them would take the claim tag from under that
    session (for a by-name attach, the authorizer would also refuse the connect)."""
    sessions, records = store.contents()
    live = {s.session_id: s for s in sessions if s.live}
    for record in records:
        holder = live.get(record.session_id)
        if record.function_name in names and holder:
            raise SessionConflict(
                f"function {record.function_name!r} is already debugged by {holder.created_by} "
                f"since {holder.created_at} (session {holder.status.lower()}, {holder.stack_name}): "
                "use --force to take it over"
            )


def list_stack_resources(ctx: AwsContext, stack_name: str) -> list[dict[str, Any]]:
    """Every resource summary of one stack; a missing stack is a clear error."""
    paginator = ctx.client("cloudformation").get_paginator("list_stack_resources")
    try:
        return [r for page in paginator.paginate(StackName=stack_name)
                for r in page["StackResourceSummaries"]]
    except Exception as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            raise StackNotFound(
                f"stack {stack_name!r} not found in region {ctx.region_name}: "
                "check --stack-name and --region"
            ) from exc
        raise


def select_functions(
    functions: dict[str, LocalFunction], patterns: tuple[str, ...]
) -> dict[str, LocalFunction]:
    """Keep the functions whose logical id or physical name matches a --function glob."""
    if not patterns:
        return functions
    return {
        physical: function
        for physical, function in functions.items()
        if any(fnmatch.fnmatchcase(function.logical_id, pattern)
               or fnmatch.fnmatchcase(physical, pattern) for pattern in patterns)
    }


def describe_nothing_to_debug(options: AttachOptions, skipped: dict[str, str]) -> str:
    if options.functions:
        return (f"no Python function of stack {options.stack_name!r} matches "
                f"--function {' '.join(options.functions)}")
    reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
    return f"stack {options.stack_name!r} has no Python functions" + (
        f" ({reasons})" if reasons else "")


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


class Attachment:
    """A running attach: one session, one connection, one executor."""

    def __init__(self, ctx: AwsContext, options: AttachOptions, plan: AttachPlan) -> None:
        self.ctx = ctx
        self.options = options
        self.plan = plan
        self.store = SessionStore(plan.debugger_ctx, plan.helper.sessions_table)
        self.executor = Executor(plan.functions, credentials=options.credentials)
        self.session_id = ""
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
        self.connection = Connection(
            self.plan.helper.websocket_url,
            self.connect_query(),
            self.on_message,
            headers=lambda: {naming.IDENTITY_HEADER: identity_proof(self.ctx, self.session_id)},
            check_live=lambda: self.store.ensure_live(self.session_id),
        )
        await asyncio.to_thread(
            claim_functions, self.ctx, self.plan.caller_arn, self.session_id, functions
        )
        try:
            await self.connection.open()
        except BaseException:
            await asyncio.to_thread(release_claims, self.ctx, self.plan.caller_arn, functions)
            raise

    def connect_query(self) -> dict[str, str]:
        """The session and what it asks for; the authorizer creates it from this."""
        query = {"sessionId": self.session_id, naming.Q_STACK_NAME: self.options.stack_name}
        if self.options.functions:
            query[naming.Q_FUNCTIONS] = ",".join(self.options.functions)
        if self.options.named:
            query[naming.Q_NAMES] = ",".join(sorted(self.plan.functions))
        if self.options.timeout is not None:
            query[naming.Q_TIMEOUT] = str(self.options.timeout)
        if self.options.force:
            query[naming.Q_FORCE] = "1"
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
        console.success(f"detached: {len(restored)} function(s) restored")
        for name in failed:
            console.error(f"not restored: {name}")
        return 1 if failed else self.exit_code

    # -- messages ------------------------------------------------------------------------

    async def on_message(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == p.TYPE_INVOCATION:
            await self.on_invocation(message)
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
                console.info("[bold]attached[/bold]: waiting for invocations (Ctrl-C to detach)")
                return
            console.error(f"{problem}: detaching")
            self.exit_code = 1
            self.start_detach()

    async def on_invocation(self, message: dict[str, Any]) -> None:
        request_id = message["request_id"]
        assert self.connection is not None
        if request_id in self.answers:  # reposted after a reconnect: the answer may be lost
            await self.connection.send(self.answers[request_id])
            return
        if request_id in self.running:
            return
        self.running.add(request_id)
        if "event_ref" in message:
            try:
                event = await asyncio.to_thread(payloads.fetch, message["event_ref"])
            except payloads.PayloadError as exc:
                await self.send_payload_failure(request_id, exc)
                return
            message = {**message, "event": event.decode()}
            del message["event_ref"]
        if not self.gate.is_set():  # --wait-for-client: hold it, not the connection
            self.print_held(message)
        while not self.gate.is_set():
            await asyncio.sleep(GATE_POLL_SECONDS)
        loop = asyncio.get_running_loop()
        started = time.monotonic()

        def done(_request_id: str, outcome: Any) -> None:
            try:
                loop.call_soon_threadsafe(
                    lambda: loop.create_task(self.answer(message, outcome, started))
                )
            except RuntimeError:  # loop closed: plldb detached while this handler ran
                log.debug("%s finished after plldb detached; not answered", request_id)

        self.executor.submit(message, done)

    async def answer(self, invocation: dict[str, Any], outcome: Any, started: float) -> None:
        request_id = invocation["request_id"]
        if outcome.ok:
            reply = await self.result_message(invocation, outcome.body)
        else:
            reply = p.error_message(request_id, outcome.error)
        self.answers[request_id] = reply
        while len(self.answers) > ANSWER_CACHE:
            self.answers.popitem(last=False)
        self.running.discard(request_id)
        assert self.connection is not None
        await self.connection.send(reply)
        self.print_invocation(invocation, outcome, time.monotonic() - started)

    async def send_payload_failure(self, request_id: str, exc: payloads.PayloadError) -> None:
        """The event could not be downloaded: the function answers with the reason at once."""
        console.error(f"request {request_id}: {exc}")
        self.running.discard(request_id)
        assert self.connection is not None
        await self.connection.send(p.error_message(request_id, payload_error(exc)))

    async def result_message(self, invocation: dict[str, Any], body: bytes) -> dict[str, Any]:
        request_id = invocation["request_id"]
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return p.error_message(request_id, BINARY_RESULT_ERROR)
        inline = p.response_message(request_id, result=text)
        if len(body) <= limits.INLINE_PAYLOAD_LIMIT and len(p.encode(inline).encode()) <= limits.MESSAGE_SIZE:
            return inline  # measured encoded: JSON escaping can make a result grow sixfold
        try:
            ref = await asyncio.to_thread(payloads.upload, invocation.get("result_upload"), body)
        except payloads.PayloadError as exc:
            console.error(f"request {request_id}: {exc}")
            return p.error_message(request_id, payload_error(exc))
        return p.response_message(request_id, result_ref=ref)

    def logical_id(self, invocation: dict[str, Any]) -> str:
        local = self.plan.functions.get(invocation["function_name"])
        return local.logical_id if local else invocation["function_name"]

    def print_held(self, invocation: dict[str, Any]) -> None:
        debugpy = self.options.debugpy
        where = f" on {debugpy.host}:{debugpy.port}" if debugpy else ""
        console.info(
            f"{self.logical_id(invocation)}  {invocation['request_id']}  waiting for a debugger "
            f"to attach{where} (--wait-for-client)"
        )

    def print_invocation(self, invocation: dict[str, Any], outcome: Any, seconds: float) -> None:
        """One line per invocation; an error is shown whole (it is what the caller got)."""
        when = datetime.now().strftime("%H:%M:%S")
        result = (
            "[green]ok[/green]"
            if outcome.ok
            else f"[red]{escape(str(outcome.error.get('errorType', 'error')))}[/red]: "
            f"{escape(str(outcome.error.get('errorMessage', '')))}"
        )
        console.info(
            f"{when}  {self.logical_id(invocation)}  {invocation['request_id']}  "
            f"{seconds * 1000:.0f} ms  {result}"
        )
        records.keep(self.plan.functions.get(invocation["function_name"]), invocation, outcome, seconds)
