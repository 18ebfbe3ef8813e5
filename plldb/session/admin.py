"""`plldb detach` and `plldb status`: look at and restore a stack without a live attach.

detach asks the manager Lambda (synchronously) to restore every function of the stack that
has an instrumentation record, then closes the stack's live sessions; it is what to run
after a crash, and running it twice is harmless.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from plldb import __version__, naming
from plldb.cloud.aws import AwsContext, caller_identity
from plldb.cloud.helper_stack import HelperStack, find_helper_stack
from plldb.session.plan import list_stack_resources
from plldb.session.sessions import SessionStore

log = logging.getLogger(__name__)


class DetachError(Exception):
    """The manager could not restore the stack; the message says which function and why."""


@dataclass
class DetachResult:
    restored: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    sessions_closed: list[str] = field(default_factory=list)
    sessions_kept: list[str] = field(default_factory=list)  # colleagues' on a shared stage


def detach_stack(ctx: AwsContext, stack_name: str) -> DetachResult:
    """Restore every instrumented function of ``stack_name`` and close its sessions.

    On a shared stage only the caller's own sessions are closed: a colleague's live session
    keeps its routes, and the stage stays instrumented for it (the last session to leave
    restores it).

    The manager does both, session by session: it closes the session first, so the shim
    stops routing to it, then restores what the session instrumented (and records of
    sessions that are over). The local tool only reads the table.
    """
    helper, store = helper_and_store(ctx, "plldb-detach")
    me = naming.session_owner(caller_identity(ctx)["Arn"])
    sessions, records = store.contents(stack_name)
    if not sessions and not records:  # a typo must not read as "nothing to restore"
        if stack_name.startswith(naming.BY_NAME_PREFIX):
            raise DetachError(
                f"nothing is attached under {stack_name}: no session or instrumented function "
                "has that key (`plldb status --all` lists what is attached)"
            )
        list_stack_resources(ctx, stack_name)  # StackNotFound when there is no such stack
    result = DetachResult()
    others = {s.session_id for s in sessions if s.shared and s.live and s.created_by != me}
    open_sessions = [s.session_id for s in sessions
                     if s.status != naming.CLOSED and s.session_id not in others]
    result.sessions_closed = open_sessions
    result.sessions_kept = sorted({s.created_by for s in sessions if s.session_id in others})
    owners = {f.session_id for f in records if f.session_id}
    requests = [{"action": "deinstrument", "session_id": session_id}
                for session_id in sorted(set(open_sessions) | {o for o in owners if not naming.is_route_table(o)})]
    if any(naming.is_route_table(o) for o in owners):
        # A shared stage is restored when its last session leaves: the sessions above leave
        # it, and the sweep restores a stage whose sessions are all over already.
        requests.append({"action": "sweep"})
    for request in requests:
        outcome = invoke_manager(ctx, helper.manager_function, request)
        result.restored += list(outcome.get("restored", []))
        result.failed += list(outcome.get("failed", []))
    return result


def invoke_manager(ctx: AwsContext, function_name: str, request: dict[str, Any]) -> dict:
    """Run a manager action synchronously; its failure becomes a DetachError."""
    response = ctx.client("lambda").invoke(
        FunctionName=function_name,
        InvocationType="RequestResponse",
        Payload=json.dumps(request).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"null")
    if not isinstance(payload, dict):
        raise DetachError(f"the manager answered {payload!r}")
    if response.get("FunctionError") or "error" in payload:
        message = payload.get("errorMessage") or payload.get("error")
        raise DetachError(f"the manager failed to restore the stack: {message}")
    return payload


def stack_status(ctx: AwsContext, stack_name: str | None = None) -> dict[str, Any]:
    """Helper stack version, sessions and instrumented functions, as plain data for --json."""
    helper, store = helper_and_store(ctx, "plldb-status")
    sessions, records = store.contents(stack_name)
    return {
        "plldb_version": __version__,
        "helper_stack_version": helper.version,
        "region": ctx.region_name,
        "sessions": [{**asdict(s), "live": s.live} for s in sessions],
        "instrumented_functions": [asdict(f) for f in records],
    }


def helper_and_store(ctx: AwsContext, role_session_name: str) -> tuple[HelperStack, SessionStore]:
    """The helper stack, and its sessions table read with the debugger role."""
    caller_identity(ctx)
    helper = find_helper_stack(ctx)
    debugger = ctx.assumed(helper.debugger_role_arn, role_session_name)
    return helper, SessionStore(debugger, helper.sessions_table)
