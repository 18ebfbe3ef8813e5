"""``$connect``: start instrumenting the session's stack, and answer at once.

Instrumentation waits for every function update, which can take longer than API Gateway's
29 s integration timeout, so it runs in the manager, invoked asynchronously. The session
was checked and opened by the authorizer; the manager is given its id, this connection and
the authorizer's one-time nonce, and reads everything else (stack, functions, timeout) from
the session item itself.
"""

from __future__ import annotations

from typing import Any

from plldb import protocol
from plldb.lambdas import common
from plldb.lambdas.common import log


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        _start_instrumentation(event)
    except Exception:  # a failed start refuses the connection: the client sees it at once
        log.exception("connect failed")
        return {"statusCode": 500, "body": "instrumentation could not be started"}
    return {"statusCode": 200, "body": "connected"}


def _start_instrumentation(event: Any) -> None:
    authorizer = common.authorizer_context(event)
    session_id = authorizer.get("sessionId")
    connection_id = common.connection_id_of(event)
    if not protocol.is_session_id(session_id) or connection_id is None:
        raise ValueError("$connect without an authorized session")
    nonce = authorizer.get("instrumentNonce")
    if not nonce:
        raise ValueError("$connect without the authorizer's instrument nonce")
    config = common.Config.from_environ()
    common.invoke_manager(
        config,
        {
            "action": "instrument",
            "session_id": session_id,
            "connection_id": connection_id,
            "nonce": nonce,
        },
    )
    log.info(
        "instrumentation of %s started for session %s", authorizer.get("stackName"), session_id
    )
