"""What the manager is asked to do: one validated request per invocation.

The manager is invoked by the WebSocket routes, by the sweep schedule, and directly by
``plldb detach``; whatever arrives is checked here before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plldb import protocol

ACTIONS = ("instrument", "deinstrument", "deinstrument_after_grace", "sweep")


class InvalidRequest(ValueError):
    """The manager was invoked with a payload it does not understand."""



@dataclass
class Request:
    """What to do, for which session. An instrument request names nothing else: the stack,
    its function filter and the timeout are the session's own (its item, written by the
    authorizer), and ``nonce`` is the one-time permission of the ``$connect`` that opened
    it (docs/security.md, "The manager trusts only the session item")."""

    action: str
    session_id: str
    connection_id: str | None
    nonce: str = ""
    reply: bool = False

    @classmethod
    def parse(cls, event: Any) -> Request:
        if not isinstance(event, dict) or event.get("action") not in ACTIONS:
            raise InvalidRequest("manager request without a known action")
        if event["action"] == "sweep":
            return cls(action="sweep", session_id="", connection_id=None)
        if not protocol.is_session_id(event.get("session_id")):
            raise InvalidRequest("manager request without a valid session_id")
        connection_id = event.get("connection_id")
        if connection_id is not None and not isinstance(connection_id, str):
            raise InvalidRequest("connection_id must be a string")
        nonce = event.get("nonce") or ""
        if event["action"] == "instrument" and (not isinstance(nonce, str) or not nonce):
            raise InvalidRequest("instrument needs the nonce of the $connect that opened the session")
        return cls(
            action=event["action"],
            session_id=event["session_id"],
            connection_id=connection_id,
            nonce=nonce,
            reply=bool(event.get("reply")),
        )
