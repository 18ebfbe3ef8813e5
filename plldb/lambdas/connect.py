"""``$connect``: start instrumenting the session's stack, and answer at once.

Instrumentation waits for every function update, which can take longer than API Gateway's
29 s integration timeout, so it runs in the manager, invoked asynchronously. The session
was checked and consumed by the authorizer; its id and stack come from the authorizer's
context, its options (function filter, timeout) from its item.
"""

from __future__ import annotations

from typing import Any

from plldb import naming, protocol
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
    config = common.Config.from_environ()
    item = (
        common.client("dynamodb")
        .get_item(
            TableName=config.sessions_table,
            Key={naming.A_SESSION_ID: {"S": session_id}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )
    functions = [value["S"] for value in item.get(naming.A_FUNCTIONS, {}).get("L", [])]
    timeout = item.get(naming.A_TIMEOUT, {}).get("N")
    common.invoke_manager(
        config,
        {
            "action": "instrument",
            "session_id": session_id,
            "stack_name": authorizer.get("stackName", ""),
            "connection_id": connection_id,
            "functions": functions,
            "timeout": int(timeout) if timeout is not None else None,
        },
    )
    log.info(
        "instrumentation of %s started for session %s", authorizer.get("stackName"), session_id
    )
