"""The copy of an invocation answered in the cloud, for a mirror session (``attach --mirror``).

The deployed code answered the caller; the developer's plldb runs the local code on the same
event and shows how the two results differ (plldb/session/serving.py). The message is
posted after the caller has its answer, so the caller never waits for it. It travels in one
post to the connection or not at all: an event and result over the 32 KB a post may carry
are announced by their size only (the laptop says it skipped them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from plldb import limits, protocol, runner
from plldb.layer.runtime_api import Invocation

_HEAD = ("type", "request_id", "session_id", "function_name")


def message(invocation: Invocation, outcome: runner.Outcome, session_id: str,
            function_name: str, environ: Mapping[str, str], started: float) -> bytes:
    """The ``mirror`` message: the event and the cloud's result, or only the size when they
    do not fit one post to the connection."""
    fields: dict[str, Any] = {
        "type": protocol.TYPE_MIRROR,
        "request_id": invocation.request_id,
        "session_id": session_id,
        "function_name": function_name,
    }
    event = invocation.body.decode("utf-8", errors="replace")
    cloud = ({"response": (outcome.body or b"").decode("utf-8", errors="replace")}
             if outcome.ok else {"error": outcome.error})
    fields.update({
        "invoked_function_arn": invocation.header(runner.H_FUNCTION_ARN) or "",
        "deadline_ms": invocation.deadline_ms,
        "remaining_ms": max(0, invocation.deadline_ms - int(started * 1000)),
        "environment": dict(environ),
        "trace_id": invocation.header(runner.H_TRACE_ID),
        "client_context": invocation.header(runner.H_CLIENT_CONTEXT),
        "cognito_identity": invocation.header(runner.H_COGNITO_IDENTITY),
        "tenant_id": invocation.header(runner.H_TENANT_ID),
        "event": event,
        "cloud": cloud,
    })
    data = protocol.encode(fields).encode()
    if len(data) <= limits.POST_SIZE:
        return data
    size = len(invocation.body) + len(outcome.body or b"")
    return _too_large(fields, size)


def _too_large(message: dict[str, Any], size: int) -> bytes:
    return protocol.encode({**{k: message[k] for k in _HEAD}, "too_large": size}).encode()
