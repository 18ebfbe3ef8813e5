"""What the manager is asked to do: one validated request per invocation.

The manager is invoked by the WebSocket routes, by the sweep schedule, and directly by
``plldb detach``; whatever arrives is checked here before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plldb import protocol

ACTIONS = ("instrument", "deinstrument", "deinstrument_after_grace", "sweep")


class InvalidRequest(ValueError):
    """The manager was invoked with a payload it does not understand."""



@dataclass
class Request:
    action: str
    session_id: str
    connection_id: str | None
    stack_name: str = ""
    functions: list[str] = field(default_factory=list)
    timeout: int | None = None
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
        functions = event.get("functions") or []
        if not isinstance(functions, list) or not all(isinstance(f, str) for f in functions):
            raise InvalidRequest("functions must be a list of names or globs")
        timeout = event.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1
        ):
            raise InvalidRequest("timeout must be a positive number of seconds")
        stack_name = event.get("stack_name") or ""
        if event["action"] == "instrument" and (not isinstance(stack_name, str) or not stack_name):
            raise InvalidRequest("instrument needs a stack_name")
        return cls(
            action=event["action"],
            session_id=event["session_id"],
            connection_id=connection_id,
            stack_name=stack_name,
            functions=functions,
            timeout=timeout,
            reply=bool(event.get("reply")),
        )
