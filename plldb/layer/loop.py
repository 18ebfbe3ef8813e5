"""The shim's Runtime API loop: send each invocation to the local debugger, return its answer.

For every event: read the session; if it is gone, run the handler here (pass-through) and
stop, so the caller hands the process over to the original runtime. Otherwise record the
request in PLLDBDebugger, post the ``invocation`` message to the session's connection, and
poll the request item (see :mod:`plldb.layer.polling`) until the answer, the deadline, or the
end of the session. While waiting, the session is re-read every couple of seconds: a new
connection (the tool reconnected) gets the invocation again (the tool ignores duplicates),
a session that is over turns the invocation into a pass-through.

A session is over when it is deleted, CLOSED or past its TTL, and also when no debugger has
been connected for the grace period: DISCONNECTED since then, PENDING (a reconnect that does
not arrive), or ACTIVE on a connection API Gateway says is gone (its ``$disconnect`` was
lost). ``$disconnect`` is best effort, so the shim never waits on it alone.

On a shared stage (``DEBUGGER_SESSION_ID`` names the stack's route table, see
:mod:`plldb.layer.stage`) each invocation first picks its session by the routes
(:func:`plldb.route_table.choose`). One routed to nobody runs here, in this process, with no
extra cold start, and the shim keeps serving; so does one routed to a session that is over
(the other developers' routes stay). Mirror sessions get a copy of such an invocation and
its result, posted after the caller has its answer. Only when no session is left on the
stage does the shim hand over to the original runtime. Nothing on that path imports boto3:
the AWS clients (:mod:`plldb.layer.cloud`) are made on the first invocation that needs them.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from plldb import limits, naming, protocol, route_table, routing, runner
from plldb.layer import mirror, polling
from plldb.layer.config import ShimConfig, ShimConfigError
from plldb.layer.in_place import use_runtime_sys_path
from plldb.layer.runtime_api import Invocation, RuntimeApi, RuntimeApiError
from plldb.layer.stage import RouteTable
from plldb.layer.table_reader import TableReadError

if TYPE_CHECKING:
    from plldb.layer.cloud import Answer, Cloud, Session

log = logging.getLogger("plldb.shim")

# How AWS services refuse a call the caller's policies do not allow.
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "ForbiddenException"})


def shim_error(
    message: str, error_type: str = naming.ERROR_SHIM, request_id: str = ""
) -> dict[str, Any]:
    """An error the shim answers with itself, in the runtime's shape."""
    return runner.make_error(message, error_type, [], request_id)


class Shim:
    """Serves invocations through the local debugger until the session is gone."""

    def __init__(
        self,
        config: ShimConfig,
        api: RuntimeApi,
        cloud: Cloud | None = None,
        environ: MutableMapping[str, str] = os.environ,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        stage: RouteTable | None = None,
    ) -> None:
        self.config = config
        self.api = api
        self._cloud = cloud
        self.environ = environ
        self.clock = clock
        self.sleep = sleep
        # One helper thread: the session read runs while the request item is written; the
        # route table is re-read and mirrors are posted off the caller's path.
        self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="plldb-shim")
        self.lost_connections: set[str] = set()  # posts to these got 410 Gone
        self.away_since: dict[str, float] = {}  # session -> since when it has no debugger
        if stage is None and config.shared:
            stage = RouteTable(config.sessions_table, config.session_id, self._background)
        self.stage = stage

    @classmethod
    def from_environ(cls) -> Shim:
        config = ShimConfig.from_environ(os.environ)
        address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
        if not address:
            raise ShimConfigError("missing environment variable: AWS_LAMBDA_RUNTIME_API")
        return cls(config, RuntimeApi(address))

    @property
    def cloud(self) -> Cloud:
        """The AWS clients, made on first use: an invocation that runs here needs none."""
        if self._cloud is None:
            from plldb.layer.cloud import Cloud

            self._cloud = Cloud(self.config)
        return self._cloud

    @cloud.setter
    def cloud(self, cloud: Cloud) -> None:
        self._cloud = cloud

    def run(self) -> None:
        """Serve invocations; returns after a pass-through (the session is over)."""
        while True:
            if not self.handle(self.api.next_invocation()):
                return

    def handle(self, invocation: Invocation) -> bool:
        """Answer one invocation; False when it was passed through (session gone)."""
        try:
            return self._debug_when_allowed(invocation)
        except RuntimeApiError as exc:
            log.error("the Runtime API refused the answer to %s: %s", invocation.request_id, exc)
        except Exception as exc:  # noqa: BLE001 - any failure must still answer the invocation
            log.exception("debugging request %s failed", invocation.request_id)
            message = f"plldb could not send the invocation to the local debugger: {exc}"
            self.api.post_error(invocation, shim_error(message, request_id=invocation.request_id))
        return True

    def _debug_when_allowed(self, invocation: Invocation) -> bool:
        """:meth:`_debug`, retried while the function's role is refused (AccessDenied).

        The manager grants the role its PLLDBShimAccess policy just before it updates the
        function, and IAM changes take a while to reach every service (eventual
        consistency): the first invocations may be refused. They are retried with back-off
        for ``polling.ACCESS_RETRY_SECONDS`` (and never past the invocation's deadline
        margin); if still refused, the invocation runs in the cloud and the log says why.
        """
        started = self.clock()
        deadline = invocation.deadline_ms / 1000
        give_up_at = min(
            started + polling.ACCESS_RETRY_SECONDS,
            deadline - polling.deadline_margin(deadline - started),
        )
        delay = polling.ACCESS_RETRY_FIRST_DELAY
        while True:
            try:
                return self._serve(invocation)
            except Exception as exc:
                code, text = refusal_of(exc)
                if code not in ACCESS_DENIED_CODES:
                    raise
                now = self.clock()
                if now + delay > give_up_at:
                    self.pass_through(
                        invocation,
                        f"plldb's calls are still refused after {now - started:.1f} s ({code}: "
                        f"{text}); IAM changes take a while to propagate: "
                        f"if this persists, the function's role lacks {naming.SHIM_POLICY_NAME}",
                    )
                    return False
                log.info("access refused (%s): the grant may still be propagating; retrying "
                         "in %.1f s", code, delay)
                self.sleep(delay)
                delay = min(polling.ACCESS_RETRY_MAX_DELAY, delay * 2)

    # --- routing ------------------------------------------------------------------------

    def _serve(self, invocation: Invocation) -> bool:
        """Debug the invocation in its session; on a shared stage, pick the session first."""
        if self.stage is None:
            return self._debug(invocation, self.config.session_id)
        try:
            entries = self.stage.entries()
        except TableReadError as exc:
            if exc.code in ACCESS_DENIED_CODES:
                raise
            # Never guess a recipient: run it here, as for an invocation routed to nobody.
            self.pass_through(invocation, f"the route table cannot be read ({exc})")
            return True
        if not entries:
            self.pass_through(invocation, "no session is left on the shared stage")
            return False
        view = routing.InvocationView(
            invocation.body, invocation.header(runner.H_TENANT_ID), invocation.request_id
        )
        decision = route_table.choose(entries, view)
        if decision.debug is not None:
            return self._debug(invocation, decision.debug.session_id)
        started = self.clock()
        outcome = self.run_here(invocation)
        if decision.mirrors:
            self._background.submit(self._mirror, invocation, outcome, decision.mirrors, started)
        return True

    def _mirror(self, invocation: Invocation, outcome: runner.Outcome,
                mirrors: tuple[route_table.Entry, ...], started: float) -> None:
        """Post a copy of an invocation answered here to each mirror session (after the
        caller has its answer; a failure is only logged)."""
        try:
            for entry in mirrors:
                session = self.cloud.read_session(entry.session_id)
                if not self.reachable(session):
                    continue
                data = mirror.message(invocation, outcome, entry.session_id,
                                      self.config.function_name, self.environ, started)
                if not self.cloud.post(session.connection_id or "", data):
                    self.lost_connections.add(session.connection_id or "")
        except Exception:  # noqa: BLE001 - the caller was answered; the copy is best effort
            log.exception("could not mirror request %s", invocation.request_id)

    # --- debug path ---------------------------------------------------------------------

    def _debug(self, invocation: Invocation, session_id: str) -> bool:
        """Send the invocation to ``session_id``'s debugger and answer with its answer.

        The session read and the request write overlap: one DynamoDB round trip less per
        invocation. If the session turns out to be gone, the item written for nothing is
        deleted like an answered one. False when the invocation ran here because the
        session is over and no other session may come (the shim then hands over).
        """
        from plldb.layer.cloud import Answer

        reading = self._background.submit(self.cloud.read_session, session_id)
        message, ref = self._message(invocation, session_id)
        self.cloud.put_request(invocation.request_id, session_id)
        session = reading.result()
        started = self.clock()
        over = self.over(session_id, session, started)
        if over:
            self._background.submit(self._forget, invocation.request_id, [ref] if ref else [])
            return self._session_over(invocation, over)
        self.cloud.reads = self.cloud.session_reads = 0
        answer = self._wait(invocation, session_id, session,
                            protocol.encode(message).encode(), started)
        result_ref = answer.ref if isinstance(answer, Answer) else None
        left = [r for r in (ref, result_ref) if r]
        self._background.submit(self._forget, invocation.request_id, left)
        if isinstance(answer, str):
            return self._session_over(invocation, f"{answer} while waiting")
        log.info(
            "request %s answered after %.3f s (%d item reads, %d session reads)",
            invocation.request_id,
            self.clock() - started,
            self.cloud.reads,
            self.cloud.session_reads,
        )
        if answer.error is not None:
            self.api.post_error(invocation, answer.error)
        else:
            self.api.post_response(invocation, answer.body or b"")
        return True

    def _forget(self, request_id: str, refs: list[dict[str, Any]]) -> None:
        """Delete the request's item and payloads once answered (off the caller's path)."""
        try:
            self.cloud.forget(request_id, refs)
        except Exception:  # noqa: BLE001 - the TTL and the bucket's lifecycle rule remain
            log.exception("could not delete what request %s left behind", request_id)

    def _session_over(self, invocation: Invocation, reason: str) -> bool:
        """Run the invocation here; on a shared stage the shim goes on serving the others."""
        self.pass_through(invocation, reason)
        return self.stage is not None

    def _message(
        self, invocation: Invocation, session_id: str
    ) -> tuple[dict[str, Any], dict | None]:
        """The ``invocation`` message, and the event's reference when it went to the bucket.

        The event travels inline when the whole message fits in one post to the connection
        (``POST_SIZE``: API Gateway's 32 KB frame quota applies to @connections), else
        through the bucket, with a presigned GET URL for it in ``event_ref``. The message
        always carries a presigned PUT URL for the result (``result_upload``). The full
        environment (with the function's credentials) and the URLs go in the message only:
        they reach the local tool over the connection and are never stored.
        """
        try:
            event = invocation.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            from plldb.layer.cloud import PayloadError

            raise PayloadError(f"the event is not UTF-8 text: {exc}") from exc
        message: dict[str, Any] = {
            "type": protocol.TYPE_INVOCATION,
            **invocation.context_fields(),
            "session_id": session_id,
            "function_name": self.config.function_name,
            "environment": dict(self.environ),
            "event": event,
        }
        seconds = payload_url_seconds(invocation.deadline_ms, self.clock())
        upload = self.cloud.result_upload(invocation.request_id, seconds, session_id)
        if upload is not None:  # sent always: any result may turn out too large for a message
            message["result_upload"] = upload
        if len(protocol.encode(message).encode()) <= limits.POST_SIZE:
            return message, None
        ref = self.cloud.put_payload(invocation.request_id, "event", invocation.body, session_id)
        del message["event"]
        message["event_ref"] = {**ref, "url": self.cloud.presign("get", ref["key"], seconds)}
        return message, ref

    def reachable(self, session: Session) -> bool:
        """ACTIVE on a connection that has not answered 410 Gone."""
        return session.connected and session.connection_id not in self.lost_connections

    def over(self, session_id: str, session: Session, now: float) -> str | None:
        """Why no debugger will answer (the invocation then runs in the cloud), or None.

        The time without a reachable debugger counts from the session's DisconnectedAt, or
        from when this shim first saw it unreachable, and is capped at the grace period.
        """
        if session.gone:
            return f"session is {session.label}"
        if self.reachable(session):
            self.away_since.pop(session_id, None)
            return None
        since = self.away_since.setdefault(session_id, min(now, session.disconnected_at or now))
        away = now - since
        if away >= self.config.grace_seconds:
            return (
                f"no debugger connected for {away:.0f} s (session {session.status}, grace "
                f"period {self.config.grace_seconds:.0f} s)"
            )
        return None

    def _wait(
        self, invocation: Invocation, session_id: str, session: Session, data: bytes,
        started: float,
    ) -> Answer | str:
        """Poll for the answer; why, when the session is over first (pass-through).

        Gives up ``polling.deadline_margin`` before the deadline with a clear error, after
        marking the request EXPIRED so that a late answer is refused.
        """
        request_id = invocation.request_id
        deadline = invocation.deadline_ms / 1000
        give_up_at = deadline - polling.deadline_margin(deadline - started)
        backoff = polling.Backoff()
        attempted: str | None = None  # the connection the message was last posted to
        fresh: Session | None = session  # the session read just before, if any
        session_due = started
        while True:
            now = self.clock()
            if now >= session_due:
                current = fresh or self.cloud.read_session(session_id)
                fresh = None
                over = self.over(session_id, current, now)
                if over:
                    return self.cloud.expire(request_id, session_id) or over
                session_due = now + (
                    polling.SESSION_CHECK_INTERVAL
                    if self.reachable(current)
                    else polling.RECONNECT_CHECK_INTERVAL
                )
                if self.reachable(current) and current.connection_id != attempted:
                    attempted = current.connection_id
                    if self.cloud.post(attempted, data):
                        backoff.reset()
                    else:  # gone: look for the new connection at once
                        self.lost_connections.add(attempted)
                        session_due = now
            answer = self.cloud.read_answer(request_id, session_id)
            if answer is not None:
                return answer
            now = self.clock()
            if now >= give_up_at:
                from plldb.layer.cloud import Answer

                return self.cloud.expire(request_id, session_id) or Answer(
                    error=shim_error(
                        "no response from the local debugger before the deadline (waited "
                        f"{now - started:.1f} s; answered {deadline - now:.1f} s before the "
                        "function's timeout)",
                        naming.ERROR_NO_RESPONSE,
                        request_id,
                    )
                )
            self.sleep(max(0.0, min(backoff.delay(), give_up_at - now, session_due - now)))

    # --- pass-through -------------------------------------------------------------------

    def pass_through(self, invocation: Invocation, reason: str) -> None:
        """:meth:`run_here`, saying why in the function's log."""
        log.info("%s: running %s in the cloud (pass-through)", reason,
                 self.environ.get("_HANDLER", ""))
        self.run_here(invocation)

    def run_here(self, invocation: Invocation) -> runner.Outcome:
        """Run the function's own handler here, exactly as the runtime would, and answer.

        The handler's module is imported once per environment, as the runtime does: the
        next invocation that runs here finds it loaded.
        """
        handler = self.environ.get("_HANDLER", "")
        use_runtime_sys_path(self.environ)
        runner.set_trace_id(invocation.header(runner.H_TRACE_ID), self.environ)
        outcome = runner.run_invocation(handler, invocation.body, invocation.headers, self.environ)
        if outcome.ok:
            self.api.post_response(invocation, outcome.body, outcome.content_type)
        else:
            assert outcome.error is not None
            sys.stdout.write(runner.error_log_text(outcome.error))
            sys.stdout.flush()
            self.api.post_error(invocation, outcome.error)
        return outcome


def refusal_of(exc: Exception) -> tuple[str, str]:
    """(error code, message) of a refused AWS call, from boto3 or the table reader."""
    if isinstance(exc, TableReadError):
        return exc.code, str(exc)
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    return str(error.get("Code", "")), str(error.get("Message", ""))


def payload_url_seconds(deadline_ms: int, now: float) -> int:
    """How long the payload URLs of an invocation stay valid.

    Until the invocation's deadline (after it the shim no longer waits and ``$default``
    refuses the answer, so a URL is useless) plus ``PAYLOAD_URL_MARGIN_SECONDS`` for a
    transfer that starts just before it (a timeout is at most ``MAX_TIMEOUT``).
    """
    remaining = math.ceil(deadline_ms / 1000 - now)
    return max(0, min(remaining, limits.MAX_TIMEOUT)) + limits.PAYLOAD_URL_MARGIN_SECONDS
