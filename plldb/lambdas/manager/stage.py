"""Ending a session of a shared stage: the stage's functions stay instrumented while any
session lives on it, and the last one to end restores them.

On a shared stage the functions are instrumented for the stage, not for one session: their
``DEBUGGER_SESSION_ID`` and their records' owner are the stack's route table
(``STACK#<stack>``). A session that ends leaves the table and removes its own route claim
from the functions; sessions that are over without having said so (a ``kill -9``, a lost
``$disconnect``) are pruned the same way whenever the stage is looked at. Only when no entry
is left does the manager restore, holding the table (plldb/lambdas/stage_table.py) so that
nobody joins a stage whose functions are being restored.
"""

from __future__ import annotations

from typing import Any, Protocol

from plldb import naming, protocol, route_table
from plldb.lambdas import common, stage_table
from plldb.lambdas.common import log
from plldb.lambdas.manager.claims import Claims
from plldb.lambdas.manager.records import Records


class Manager(Protocol):
    """What ending a stage's session needs of the manager run (plldb/lambdas/manager/entry.py)."""

    config: common.Config
    connection: common.Connection
    records: Records
    claims: Claims

    def restore_all(self, records: list[dict[str, Any]], reply: bool) -> dict[str, Any]: ...


def owner_of(session: dict[str, Any], session_id: str) -> str:
    """Who owns what this session instruments: the session, or its shared stage."""
    if is_shared_session(session):
        return naming.stack_lock_key(session.get(naming.A_STACK_NAME, {}).get("S", ""))
    return session_id


def is_shared_session(session: dict[str, Any] | None) -> bool:
    """A session created with routes or as a mirror (plldb/lambdas/session_gate.py)."""
    return bool(session) and (naming.A_ROUTES in session or naming.A_MIRROR in session)


def stack_of(owner: str) -> str:
    return owner[len(naming.STACK_LOCK_PREFIX):]


def leave(manager: Manager, session_id: str, session: dict[str, Any], reply: bool) -> dict[str, Any]:
    """``session_id`` (already CLOSED) leaves its stage; the stage is restored if it was the
    last one."""
    stack = session.get(naming.A_STACK_NAME, {}).get("S", "")
    owner = naming.stack_lock_key(stack)
    stage_table.leave(manager.config, stack, session_id)
    records = stage_records(manager, owner)
    release_route_claims(manager, records, session_id)
    return end_if_empty(manager, owner, records, reply)


def sweep(manager: Manager, owner: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The scheduled sweep's view of one stage: prune, and restore if nobody is left."""
    return end_if_empty(manager, owner, records, reply=False)


def end_if_empty(manager: Manager, owner: str, records: list[dict[str, Any]],
                 reply: bool) -> dict[str, Any]:
    """Prune sessions that are over; restore the stage's functions when none is left."""
    stack = stack_of(owner)
    remaining = prune(manager, stack, records)
    if remaining:
        log.info("stage %s: %d session(s) remain: its functions stay instrumented", stack, remaining)
        return _stays(manager, reply, remaining)
    if not stage_table.begin_restore(manager.config, stack):
        log.info("stage %s: a session joined, or another run restores it: nothing to do", stack)
        return _stays(manager, reply, 1)
    result = manager.restore_all(stage_records(manager, owner), reply)
    stage_table.finish_restore(manager.config, stack)
    return result


def _stays(manager: Manager, reply: bool, remaining: int) -> dict[str, Any]:
    """The stage stays instrumented for ``remaining`` session(s): say so, if asked."""
    result = {"restored": [], "failed": [], "remaining": remaining}
    if reply:
        manager.connection.post({"type": protocol.TYPE_DETACHED, **result})
    return result


def prune(manager: Manager, stack: str, records: list[dict[str, Any]]) -> int:
    """Remove the entries of sessions that are over (closing them); the live ones left."""
    live = 0
    for entry in route_table.stage_entries(stage_table.read(manager.config, stack)):
        reason = manager.records.session_over(entry.session_id, manager.config)
        if reason is None:
            live += 1
            continue
        log.info("stage %s: session %s is over (%s): removing its routes", stack,
                 entry.session_id, reason)
        manager.records.close_session(entry.session_id, None)
        stage_table.leave(manager.config, stack, entry.session_id)
        release_route_claims(manager, records, entry.session_id)
    return live


def stage_records(manager: Manager, owner: str) -> list[dict[str, Any]]:
    return [r for r in manager.records.all()
            if r.get(naming.A_INSTRUMENTED_BY, {}).get("S") == owner]


def release_route_claims(manager: Manager, records: list[dict[str, Any]], session_id: str) -> None:
    """Remove ``session_id``'s route claim from the stage's functions (best effort: a claim
    of a session that is over lets nobody instrument anything)."""
    for record in records:
        arn = record.get(naming.A_FUNCTION_ARN, {}).get("S")
        if arn:
            manager.claims.release_keys(arn, [naming.route_tag(session_id)])
