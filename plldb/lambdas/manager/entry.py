"""The manager: instruments and restores the Python functions of a target stack.

Invoked asynchronously (``InvocationType=Event``) by the WebSocket routes with one of:

* ``{"action": "instrument", "session_id", "connection_id", "nonce"}`` (``$connect``; the
  stack, function filter and timeout are read from the session item)
* ``{"action": "deinstrument", "session_id", "connection_id", "reply": true}`` (``detach``)
* ``{"action": "deinstrument_after_grace", "session_id", "connection_id"}`` (``$disconnect``)
* ``{"action": "sweep"}`` (a schedule, every few minutes): restores the functions of every
  session that is over, whether or not its ``$disconnect`` ever arrived (API Gateway delivers
  it on a best-effort basis, and DynamoDB keeps TTL-expired items for up to days).

Crash safety rests on the instrumentation record (PLLDBSessions item
``FUNCTION#<name>``): it says which session instrumented which function and role, and is
written before anything changes. It holds no configuration: what restoring needs (the
function's own timeout and exec wrapper) is recorded in the function's own environment, and
restoring removes plldb's traces from the function's current configuration, so a record
written by anyone else can make the manager apply nothing (docs/security.md, promise 3).
Every step is idempotent, so running either action again after a crash finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import botocore.exceptions

from plldb import limits, naming, protocol
from plldb.lambdas import common
from plldb.lambdas.common import log
from plldb.lambdas.manager import plan as manager_plan
from plldb.lambdas.manager import stage
from plldb.lambdas.manager.apply import MAX_WORKERS, Functions, Grants, parallel_map
from plldb.lambdas.manager.claims import Claims
from plldb.lambdas.manager.plan import (
    FAILED,
    GONE,
    KEPT_DEPLOY,
    OK,
    SKIPPED,
    WARNING,
    Outcome,
    Plan,
    config_subset,
)
from plldb.lambdas.manager.records import Records
from plldb.lambdas.manager.request import InvalidRequest, Request
from plldb.lambdas.manager.restore import Restorer
from plldb.lambdas.manager.targets import StackNotFound, Targets

RESTORE_RESERVE_SECONDS = 120.0  # of the manager's own time, kept for the restore after the grace


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run one manager action. Never raises: an async invocation would only be retried."""
    try:
        request = Request.parse(event)
    except InvalidRequest as exc:
        log.error("manager: %s", exc)
        return {"error": str(exc)}
    connection = common.Connection(request.connection_id, "")
    try:
        config = common.Config.from_environ()
        # $connect starts "instrument" before its own connection exists (see Connection).
        connection = common.Connection(
            request.connection_id, config.management_url, connecting=request.action == "instrument"
        )
        manager = Manager(config, connection)
        if request.action == "instrument":
            return manager.instrument(request)
        if request.action == "deinstrument":
            return manager.detach(request)
        if request.action == "sweep":
            return manager.sweep()
        return manager.deinstrument_after_grace(request, _remaining_seconds(context))
    except StackNotFound as exc:
        log.error("manager: %s", exc)
        connection.post(
            protocol.progress_message(request.action, str(exc), status=FAILED, done=True)
        )
        return {"error": str(exc)}
    except Exception as exc:
        log.exception("manager %s failed", request.action)
        connection.post(
            protocol.progress_message(
                request.action, f"plldb manager failed: {exc}", status=FAILED, done=True
            )
        )
        return {"error": str(exc)}


def _remaining_seconds(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else float(limits.MAX_TIMEOUT)


class Manager:
    """One manager run: orchestrates planning, records and changes for an action."""

    def __init__(self, config: common.Config, connection: common.Connection) -> None:
        self.config = config
        self.connection = connection
        self.lambda_ = common.client("lambda")
        self.targets = Targets(self.lambda_, common.client("cloudformation"))
        self.functions = Functions(self.lambda_)
        self.grants = Grants(common.client("iam"), config)
        self.claims = Claims(self.lambda_)
        self.records = Records(common.client("dynamodb"), config.sessions_table)
        self.restorer = Restorer(self.lambda_, self.functions, self.targets, self.claims, self.records)

    # --- actions -------------------------------------------------------------------------

    def instrument(self, request: Request) -> dict[str, Any]:
        self.config.require(
            "sessions_table",
            "debugger_table",
            "layer_arn",
            "management_url",
            "payload_bucket",
            "connections_arn",
            "shim_policy_arn",
        )
        phase = "instrument"
        refusal = self.refusal(request)
        if refusal:
            self.connection.post(
                protocol.progress_message(phase, refusal, status=FAILED, done=True)
            )
            return {"error": refusal}
        session = self.records.session(request.session_id) or {}
        stack_name = session.get(naming.A_STACK_NAME, {}).get("S", "")
        owner = stage.owner_of(session, request.session_id)
        filters = [value["S"] for value in session.get(naming.A_FUNCTIONS, {}).get("L", [])]
        functions, outcomes, described = self.targets.session_functions(
            session, stack_name, filters
        )
        self.post(phase, f"{len(functions)} function(s) {described} to instrument")
        for outcome in outcomes:
            self.report(phase, outcome)
        self.targets.read_queues()
        asked = session.get(naming.A_TIMEOUT, {}).get("N")
        timeout = min(int(asked) if asked else self.config.default_timeout, limits.MAX_TIMEOUT)
        plans: list[Plan] = []
        for item in self.in_parallel(
            lambda name: self.plan(name, request, timeout, session, owner), functions
        ):
            if isinstance(item, Plan):
                plans.append(item)
            else:
                outcomes.append(item)
                self.report(phase, item)
        plans, failures = self.record_plans(plans, owner, stack_name)
        for outcome in failures:
            outcomes.append(outcome)
            self.report(phase, outcome)
        refused = self.grants.grant({p.role_name for p in plans})
        for plan in [p for p in plans if p.role_name in refused]:
            outcomes.append(Outcome(plan.name, FAILED, refused[plan.role_name]))
            self.report(phase, outcomes[-1])
        plans = [p for p in plans if p.role_name not in refused]
        for outcome in self.in_parallel(self.apply, plans, name_of=lambda p: p.name):
            outcomes.append(outcome)
            self.report(phase, outcome)
        warned = {o.function for o in outcomes if o.status == OK}
        for plan in plans:
            for warning in plan.warnings if plan.name in warned else []:
                outcomes.append(Outcome(plan.name, WARNING, warning))
                self.report(phase, outcomes[-1])
        summary = manager_plan.summary(outcomes)
        self.post(
            phase,
            f"{len(summary['instrumented'])} instrumented, {len(summary['skipped'])} skipped, "
            f"{len(summary['failed'])} failed",
            done=True,
            summary=summary,
        )
        if not summary["instrumented"]:
            # A session that debugs nothing must not hold the stack against the next attach
            # (an attacker's session, with no claim, would otherwise do just that).
            log.info("session %s instrumented nothing: closing it", request.session_id)
            self.records.close_session(request.session_id, None)
        if self.records.session_status(request.session_id) == naming.CLOSED:
            log.info("session %s closed while instrumenting: restoring", request.session_id)
            self.end_session(request.session_id, reply=False)
        return summary

    def refusal(self, request: Request) -> str | None:
        """Why this instrument request is not the session's own, or None.

        ``$connect`` starts it for the connection the authorizer just opened, with that
        connect's one-time nonce; anyone else who may invoke the manager (``plldb detach``
        needs that) cannot point it at another connection, at a session that is not active,
        or run it again.
        """
        session = self.records.session(request.session_id)
        if self.records.session_status(request.session_id) != naming.ACTIVE or session is None:
            return f"session {request.session_id} is not active: nothing instrumented"
        connection = session.get(naming.A_CONNECTION_ID, {}).get("S")
        if connection != request.connection_id:
            return f"session {request.session_id} is not on this connection: nothing instrumented"
        if not self.records.spend_nonce(request.session_id, naming.nonce_digest(request.nonce)):
            return (f"session {request.session_id}: this request was not started by the $connect "
                    "that opened it (or was already run): nothing instrumented")
        return None

    def detach(self, request: Request) -> dict[str, Any]:
        """``detach``: close the session first (the shim stops routing to it), then restore."""
        self.records.close_session(request.session_id, None)
        return self.end_session(request.session_id, reply=request.reply)

    def deinstrument_after_grace(self, request: Request, remaining: float) -> dict[str, Any]:
        """Restore unless the client reconnects within the grace period."""
        wait = max(0.0, min(self.config.grace_seconds, remaining - RESTORE_RESERVE_SECONDS))
        log.info("session %s: waiting %.1f s for a reconnect", request.session_id, wait)
        time.sleep(wait)
        if not self.records.close_session(request.session_id, request.connection_id):
            log.info(
                "session %s reconnected or closed meanwhile: nothing to do", request.session_id
            )
            return {"reconnected": True}
        return self.end_session(request.session_id, reply=False)

    def sweep(self) -> dict[str, Any]:
        """Restore the functions of every session that is over (see :meth:`session_over`)."""
        records = self.records.all()
        over: dict[str, str] = {}
        stages = sorted({_owner(r) for r in records if naming.is_route_table(_owner(r))})
        ended = [stage.sweep(self, owner, [r for r in records if _owner(r) == owner])
                 for owner in stages]
        for owner in sorted({_owner(r) for r in records} - set(stages)):
            reason = self.records.session_over(owner, self.config)
            if reason:
                log.info("sweep: session %s is over (%s): restoring its functions", owner, reason)
                self.records.close_session(owner, None)
                over[owner] = reason
        result = self.restore_all([r for r in records if _owner(r) in over], reply=False)
        for done in ended:
            result["restored"] += done["restored"]
            result["failed"] += done["failed"]
        return {**result, "sessions": over}

    def end_session(self, session_id: str, reply: bool) -> dict[str, Any]:
        """Restore what a session that is over instrumented; a shared stage's session
        leaves the stage, which is restored once the last one has left."""
        session = self.records.session(session_id)
        if stage.is_shared_session(session):
            return stage.leave(self, session_id, session or {}, reply)
        return self.deinstrument(session_id, reply)

    def deinstrument(self, session_id: str, reply: bool) -> dict[str, Any]:
        records = [r for r in self.records.all() if self.owned_by_finished(r, session_id)]
        return self.restore_all(records, reply)

    def restore_all(self, records: list[dict[str, Any]], reply: bool) -> dict[str, Any]:
        """Restore these records' functions, revoke grants no longer needed; report if asked."""
        phase = "deinstrument"
        if reply:
            self.post(phase, f"{len(records)} function(s) to restore")
        outcomes = []
        for outcome in self.in_parallel(
            self.restorer.restore, records, name_of=lambda r: r[naming.A_FUNCTION_NAME]["S"]
        ):
            outcomes.append(outcome)
            if reply:
                self.report(phase, outcome)
            else:
                log.info("%s: %s (%s)", outcome.function, outcome.status, outcome.message)
        self.revoke(
            {r[naming.A_ROLE_NAME]["S"] for r in records if r[naming.A_GRANT_ADDED]["BOOL"]}
        )
        restored = [o.function for o in outcomes if o.status in (OK, WARNING, KEPT_DEPLOY, GONE)]
        failed = [
            {"function": o.function, "reason": o.message} for o in outcomes if o.status == FAILED
        ]
        if reply:
            self.connection.post(
                {"type": protocol.TYPE_DETACHED, "restored": restored, "failed": failed}
            )
        return {"restored": restored, "failed": failed}

    # --- instrumenting one function ------------------------------------------------------

    def plan(
        self, name: str, request: Request, timeout: int, session: dict[str, Any] | None,
        owner: str,
    ) -> Plan | Outcome:
        """Decide what to do with one function; an Outcome when it is skipped.

        A function this session's creator did not claim is skipped before anything else. A
        function its shared stage already instrumented keeps its configuration (the first
        session's timeout): changing it would restart every execution environment, under
        the other developers' feet.
        """
        configuration = self.lambda_.get_function_configuration(FunctionName=name)
        arn = configuration["FunctionArn"]
        shared = naming.is_route_table(owner)
        key = naming.route_tag(request.session_id) if shared else naming.CLAIM_TAG
        unclaimed = self.claims.unclaimed(arn, session, request.session_id, key)
        if unclaimed:
            return Outcome(name, SKIPPED, unclaimed)
        record = self.records.get(name)
        if shared and record and _owner(record) == owner:
            timeout = configuration["Timeout"]
        own_layers = manager_plan.strip_traces(config_subset(configuration))["Layers"]
        return manager_plan.plan(
            name,
            configuration,
            record,
            self.config,
            owner,
            timeout,
            self.targets.surroundings(name, own_layers),
        )

    def record_plans(
        self, plans: list[Plan], owner: str, stack_name: str
    ) -> tuple[list[Plan], list[Outcome]]:
        """Write every record before any change; GrantAdded is decided per role.

        Returns the plans whose record is written, and a FAILED outcome for the others (a
        concurrent manager rewrote the record meanwhile: the function is left untouched).
        A record its shared stage already holds is kept as it is: two developers joining
        at once must not fail each other's write.
        """
        owned_roles = {
            r[naming.A_ROLE_NAME]["S"]
            for r in self.records.all()
            if r[naming.A_GRANT_ADDED]["BOOL"]
        }
        roles = sorted({plan.role_name for plan in plans} - owned_roles)
        lacking = parallel_map(lambda role: not self.grants.has_policy(role), roles)
        added = owned_roles | {role for role, lacks in zip(roles, lacking, strict=True) if lacks}
        written: list[Plan] = []
        failures: list[Outcome] = []
        for plan in plans:
            if plan.record and naming.is_route_table(owner) and _owner(plan.record) == owner:
                written.append(plan)
                continue
            plan.grant_added = plan.role_name in added
            try:
                self.records.write(plan, stack_name, owner)
                written.append(plan)
            except botocore.exceptions.ClientError as exc:
                if common.error_code(exc) != "ConditionalCheckFailedException":
                    raise
                failures.append(
                    Outcome(plan.name, FAILED, "its record changed meanwhile (another plldb run?)")
                )
        return written, failures

    def apply(self, plan: Plan) -> Outcome:
        """Update the function unless it already runs this session's configuration.

        A reconnect re-runs instrument: skipping the no-op update spares every function an
        UpdateFunctionConfiguration and its execution environments a cold start.
        """
        if plan.current == plan.applied:
            self.records.mark_instrumented(plan.name)
            return Outcome(plan.name, OK, f"already instrumented (timeout {plan.applied['Timeout']} s)")
        self.functions.update(plan.name, plan.applied)
        self.records.mark_instrumented(plan.name)
        return Outcome(plan.name, OK, f"instrumented (timeout {plan.applied['Timeout']} s)")

    def revoke(self, roles: set[str]) -> None:
        """Remove our policy from roles we granted that no remaining record still uses."""
        in_use = {r[naming.A_ROLE_NAME]["S"] for r in self.records.all()}
        self.grants.revoke(roles - in_use)

    def owned_by_finished(self, record: dict[str, Any], session_id: str) -> bool:
        """Restore records of this session, and orphans of sessions that are over.

        A record of another live session (a ``--force`` takeover) is left alone.
        """
        owner = _owner(record)
        if naming.is_route_table(owner):
            return False  # a shared stage is restored by its last session (stage.leave)
        return owner == session_id or self.records.session_status(owner) in (None, naming.CLOSED)

    # --- plumbing ------------------------------------------------------------------------

    def in_parallel(
        self,
        work: Callable[[Any], Any],
        items: Iterable[Any],
        name_of: Callable[[Any], str] = str,
    ) -> Iterable[Any]:
        """Run ``work`` on each item in threads; a failure becomes a FAILED Outcome."""
        items = list(items)
        if not items:
            return
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items))) as pool:
            futures = {pool.submit(work, item): name_of(item) for item in items}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:
                    log.exception("%s failed", futures[future])
                    yield Outcome(futures[future], FAILED, _reason(exc))

    def post(self, phase: str, message: str, **fields: Any) -> None:
        log.info("%s %s: %s", phase, fields.get("function") or "", message)
        self.connection.post(protocol.progress_message(phase, message, **fields))

    def report(self, phase: str, outcome: Outcome) -> None:
        self.post(phase, outcome.message, function=outcome.function, status=outcome.status)


def _owner(record: dict[str, Any]) -> str:
    """The session that instrumented this record's function."""
    return record.get(naming.A_INSTRUMENTED_BY, {}).get("S", "")


def _reason(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return str(exc) or type(exc).__name__
