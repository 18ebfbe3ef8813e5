"""The copy of an invocation answered in the cloud, for a mirror session (``attach --mirror``).

The deployed code answered the caller; the developer's plldb runs the local code on the same
event and shows how the two results differ (plldb/session/serving.py). The copy is posted
after the caller has its answer, so the caller never waits for it. It travels in one post
to the connection or not at all: an event and result over what a post may carry are
announced by their size only (:func:`plldb.protocol.mirror_message`).
"""

from __future__ import annotations

from collections.abc import Mapping

from plldb import protocol, runner
from plldb.layer.runtime_api import Invocation


def message(invocation: Invocation, outcome: runner.Outcome, session_id: str,
            function_name: str, environ: Mapping[str, str], started: float) -> bytes:
    """The ``mirror`` message of an invocation that started at ``started`` (epoch s)."""
    fields = {
        **invocation.context_fields(),
        "session_id": session_id,
        "function_name": function_name,
        "environment": dict(environ),
        "event": invocation.body.decode("utf-8", errors="replace"),
    }
    remaining_ms = max(0, invocation.deadline_ms - int(started * 1000))
    if outcome.ok:
        copy = protocol.mirror_message(fields, remaining_ms,
                                       response=(outcome.body or b"").decode("utf-8", errors="replace"))
    else:
        copy = protocol.mirror_message(fields, remaining_ms, error=outcome.error)
    return protocol.encode(copy).encode()
