"""Serving invocations: run each one on the executor, answer it, print one line for it.

:class:`InvocationServing` is the part of :class:`~plldb.session.attach.Attachment` that
handles ``invocation`` messages: events and results over the inline limit travel through the
presigned URLs of :mod:`plldb.session.payloads`, and every answer is kept for a while, to be
resent when the shim reposts an invocation after a reconnect.

It also handles ``mirror`` messages (``attach --mirror``, :meth:`InvocationServing.on_mirror`):
a copy of an invocation the cloud already answered runs on the same executor and is never
answered; :mod:`plldb.capture.mirror` compares, prints and captures.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from rich.markup import escape

from plldb import console, limits
from plldb import protocol as p
from plldb.capture import mirror, records
from plldb.local.executor import Executor
from plldb.session import checks, payloads
from plldb.session.connection import Connection
from plldb.session.plan import AttachOptions, AttachPlan

log = logging.getLogger(__name__)

ANSWER_CACHE = 1000  # answers kept to resend when the shim reposts after a reconnect
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


class InvocationServing:
    """Handles invocation messages for an attach (mixed into :class:`Attachment`)."""

    connection: Connection | None
    session_id: str
    payload_place: payloads.PayloadPlace
    redirects_named: set[tuple[str, tuple[str, ...]]]
    executor: Executor
    plan: AttachPlan
    options: AttachOptions
    gate: threading.Event
    answers: OrderedDict[str, dict[str, Any]]
    running: set[str]

    async def on_invocation(self, message: dict[str, Any]) -> None:
        request_id = message["request_id"]
        assert self.connection is not None
        foreign = checks.foreign_session(message, self.session_id)
        if foreign:
            console.warn(escape(foreign))
            return
        if request_id in self.answers:  # reposted after a reconnect: the answer may be lost
            await self.connection.send(self.answers[request_id])
            return
        if request_id in self.running:
            return
        self.running.add(request_id)
        refusal = self.refusal(message)
        if refusal is not None:
            await self.send_refusal(request_id, refusal)
            return
        message = self.without_redirects(message)
        if "event_ref" in message:
            try:
                event = await asyncio.to_thread(payloads.fetch, message["event_ref"])
            except payloads.PayloadError as exc:
                await self.send_refusal(request_id, payload_error(exc))
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

    def refusal(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The error to answer instead of running this session's ``message`` (checks.py)."""
        problem = checks.payload_problem(message, self.payload_place, self.session_id)
        if problem is not None:
            return payload_error(problem)
        return checks.credentials_problem(message, self.options.credentials)

    async def send_refusal(self, request_id: str, error: dict[str, Any]) -> None:
        """Answer with ``error`` at once (nothing ran), and say why."""
        console.error(escape(f"request {request_id}: {error['errorMessage']}"))
        self.running.discard(request_id)
        assert self.connection is not None
        await self.connection.send(p.error_message(request_id, error))

    def without_redirects(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message without variables that would redirect the SDK; named once per function."""
        message, dropped = checks.without_redirects(message)
        named = (message["function_name"], tuple(dropped))
        if dropped and named not in self.redirects_named:
            self.redirects_named.add(named)
            console.warn(escape(
                f"{self.logical_id(message)}: its environment sets {', '.join(dropped)}; not used "
                "here (they would send the handler's AWS calls elsewhere or choose other "
                "credentials): your own values, if any, apply"
            ))
        return message

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

    # -- mirrors (attach --mirror) ------------------------------------------------------

    @functools.cached_property
    def mirrored(self) -> mirror.Seen:
        """Request ids of the mirrors received (a mirror posted twice runs once)."""
        return mirror.Seen()

    @functools.cached_property
    def mirror_tasks(self) -> set[asyncio.Task]:
        """Mirror tasks still running on the loop (held here so none is collected early)."""
        return set()

    async def on_mirror(self, message: dict[str, Any]) -> None:
        """A copy of an invocation the cloud answered: run the local code on it, answer
        nothing, print how the local outcome compares with the cloud's, capture it.

        The checks of an invocation apply (this session's, the function's credentials with
        ``--credentials function``, redirecting variables dropped); a mirror that fails one is
        not run, and says why. The local run has ``remaining_ms`` from now.
        """
        arrived = time.time()
        request_id = message["request_id"]
        if message["session_id"] != self.session_id:
            console.warn(mirror.foreign_line(message, self.session_id))
            return
        if not self.mirrored.first_time(request_id):
            return
        function = self.logical_id(message)
        if "too_large" in message:
            console.warn(mirror.skipped_line(function, message))
            return
        if message["function_name"] not in self.plan.functions:
            reason = mirror.unknown_function_reason(message["function_name"])
            console.error(mirror.not_run_line(function, request_id, reason))
            return
        refusal = self.refusal(message)
        if refusal is not None:
            console.error(mirror.not_run_line(function, request_id, refusal["errorMessage"]))
            return
        message = self.without_redirects(message)
        if self.gate.is_set():
            self.run_mirror(message, arrived)
            return
        self.print_held(message)  # --wait-for-client: held, without holding the connection
        self.mirror_task(self.run_mirror_when_open(message, arrived))

    def mirror_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.mirror_tasks.add(task)
        task.add_done_callback(self.mirror_tasks.discard)

    async def run_mirror_when_open(self, message: dict[str, Any], arrived: float) -> None:
        while not self.gate.is_set():
            await asyncio.sleep(GATE_POLL_SECONDS)
        self.run_mirror(message, arrived)

    def run_mirror(self, message: dict[str, Any], arrived: float) -> None:
        """Start the local run on a worker thread (a breakpoint pauses only it)."""
        loop = asyncio.get_running_loop()
        age_ms = mirror.cloud_age_ms(message, arrived)
        started = time.monotonic()

        def done(request_id: str, outcome: Any) -> None:
            seconds = time.monotonic() - started
            try:
                loop.call_soon_threadsafe(
                    lambda: self.mirror_task(self.mirror_done(message, outcome, seconds, age_ms))
                )
            except RuntimeError:  # loop closed: plldb detached while this handler ran
                log.debug("mirror %s finished after plldb detached; not compared", request_id)

        self.executor.submit(mirror.local_invocation(message, arrived), done)

    async def mirror_done(self, message: dict[str, Any], outcome: Any, seconds: float,
                          age_ms: int) -> None:
        """Print how the local run compares with the cloud's answer, and capture it."""
        request_id = message["request_id"]
        function = self.logical_id(message)
        reason = mirror.not_run(outcome)
        if reason is not None:
            console.error(mirror.not_run_line(function, request_id, reason))
            return
        difference = mirror.compare(message["cloud"], outcome)
        # One print: a handler's output, from another thread, never lands inside the diff.
        console.info("\n".join(mirror.report(function, request_id, difference, age_ms, seconds)))
        local = self.plan.functions.get(message["function_name"])
        await asyncio.to_thread(
            mirror.keep, local, message, outcome, seconds, age_ms, not difference
        )

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
