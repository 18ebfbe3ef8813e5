"""Debugging sessions in PLLDBSessions, as the local tool sees them: read-only.

The local tool never writes the table (docs/security.md): the authorizer creates a session
on ``$connect`` for the identity that proves who it is, and only that identity can resume it.
The tool reads the table, with the read-only debugger role, to say who holds a stack before
anything starts, and whether a session it lost is still live. A stack has at most one live
session: a second attach is refused, naming who attached and when, unless ``--force``; or
any number of sessions with routes or mirrors (a shared stage), which refuse and are
refused by a whole-stack session the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key

from plldb import naming
from plldb.cloud.aws import AwsContext

log = logging.getLogger(__name__)

LIVE_STATES = (naming.PENDING, naming.ACTIVE, naming.DISCONNECTED)


class SessionConflict(Exception):
    """The stack already has a live session and --force was not given."""


class SessionLost(Exception):
    """The session can no longer be resumed (closed by a detach or after the grace period)."""


@dataclass(frozen=True)
class SessionInfo:
    session_id: str
    stack_name: str
    status: str
    created_at: str
    created_by: str
    connection_id: str | None
    expires_at: int
    routes: tuple[str, ...] = ()
    mirror: bool = False

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> SessionInfo:
        return cls(
            session_id=str(item[naming.A_SESSION_ID]),
            stack_name=str(item.get(naming.A_STACK_NAME, "")),
            status=str(item.get(naming.A_STATUS, "")),
            created_at=str(item.get(naming.A_CREATED_AT, "")),
            created_by=str(item.get(naming.A_CREATED_BY, "")),
            connection_id=item.get(naming.A_CONNECTION_ID),
            expires_at=int(item.get(naming.A_TTL, 0)),
            routes=tuple(str(r) for r in item.get(naming.A_ROUTES, [])),
            mirror=bool(item.get(naming.A_MIRROR, False)),
        )

    @property
    def shared(self) -> bool:
        """A session of a shared stage (``--route``/``--mirror``)."""
        return bool(self.routes) or self.mirror

    @property
    def live(self) -> bool:
        """TTL deletion is lazy, so an expired item is treated as gone."""
        return self.status in LIVE_STATES and self.expires_at > time.time()


@dataclass(frozen=True)
class InstrumentedFunction:
    function_name: str
    stack_name: str
    status: str
    session_id: str

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> InstrumentedFunction:
        return cls(
            function_name=str(item.get(naming.A_FUNCTION_NAME, "")),
            stack_name=str(item.get(naming.A_STACK_NAME, "")),
            status=str(item.get(naming.A_STATUS, "")),
            session_id=str(item.get(naming.A_INSTRUMENTED_BY, "")),
        )


class SessionStore:
    """Reads and writes PLLDBSessions with the credentials of ``ctx``."""

    def __init__(self, ctx: AwsContext, table_name: str = naming.SESSIONS_TABLE) -> None:
        self.table = ctx.session.resource("dynamodb", region_name=ctx.region_name).Table(
            table_name
        )

    def items_for_stack(self, stack_name: str) -> list[dict[str, Any]]:
        return self._all_pages(
            self.table.query,
            IndexName=naming.STACK_NAME_INDEX,
            KeyConditionExpression=Key(naming.A_STACK_NAME).eq(stack_name),
        )

    def all_items(self) -> list[dict[str, Any]]:
        return self._all_pages(self.table.scan)

    @staticmethod
    def _all_pages(call: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a paginated query or scan."""
        items: list[dict[str, Any]] = []
        while True:
            page = call(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def contents(
        self, stack_name: str | None = None
    ) -> tuple[list[SessionInfo], list[InstrumentedFunction]]:
        """Sessions (oldest first) and instrumentation records, from one read of the table."""
        items = self.items_for_stack(stack_name) if stack_name else self.all_items()
        sessions = [SessionInfo.from_item(i) for i in items if i.get(naming.A_KIND) == naming.KIND_SESSION]
        records = [
            InstrumentedFunction.from_item(i)
            for i in items
            if i.get(naming.A_KIND) == naming.KIND_INSTRUMENTATION
        ]
        return sorted(sessions, key=lambda s: s.created_at), records

    def sessions(self, stack_name: str | None = None) -> list[SessionInfo]:
        return self.contents(stack_name)[0]

    def live_session(self, stack_name: str) -> SessionInfo | None:
        live = [s for s in self.sessions(stack_name) if s.live]
        return live[-1] if live else None

    def refuse_if_attached(self, stack_name: str, shared: bool = False) -> None:
        """SessionConflict when ``stack_name`` has a live session this attach cannot live
        beside (any, for a whole-stack attach; a whole-stack one, for a shared attach),
        naming who and since when."""
        live = [s for s in self.sessions(stack_name) if s.live and not (shared and s.shared)]
        if not live:
            return
        current = live[-1]
        if current.shared:
            owners = ", ".join(sorted({s.created_by for s in live}))
            raise SessionConflict(
                f"stack {stack_name!r} is a shared stage: {len(live)} live session(s) with routes "
                f"({owners}); attach with --route to share it (plldb status lists the routes), "
                "or use --force to take it over"
            )
        raise SessionConflict(
            f"stack {stack_name!r} is already attached by {current.created_by} since "
            f"{current.created_at} (session {current.status.lower()}): "
            "use --force to take it over"
            + ("" if not shared else ", or ask them to attach with --route to share it")
        )

    def ensure_live(self, session_id: str) -> None:
        """SessionLost unless the session can still be resumed (before each reconnect)."""
        item = self.table.get_item(Key={naming.A_SESSION_ID: session_id}, ConsistentRead=True).get(
            "Item"
        )
        if not item or not SessionInfo.from_item(item).live:
            raise SessionLost(
                f"session {session_id} was closed (detached or past its grace period)"
            )

    def status_of(self, session_id: str) -> str | None:
        item = self.table.get_item(Key={naming.A_SESSION_ID: session_id}, ConsistentRead=True).get(
            "Item"
        )
        return str(item[naming.A_STATUS]) if item else None
