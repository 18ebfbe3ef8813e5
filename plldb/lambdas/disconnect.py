"""``$disconnect``: mark the session, and have the stack restored after a grace period.

The client may be gone for good (killed, crashed) or only for a moment (network blip, API
Gateway's 2-hour connection limit). The session becomes DISCONNECTED only if this
connection is still the session's connection: a late ``$disconnect`` of an old connection,
arriving after the client reconnected, changes nothing. The manager then waits the grace
period and restores the stack unless the client came back.
"""

from __future__ import annotations

from typing import Any

from plldb import protocol
from plldb.lambdas import common
from plldb.lambdas.common import log


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        _disconnect(event)
    except Exception:  # API Gateway ignores the answer; log and carry on
        log.exception("disconnect failed")
    return {"statusCode": 200}


def _disconnect(event: Any) -> None:
    session_id = common.authorizer_context(event).get("sessionId")
    connection_id = common.connection_id_of(event)
    if not protocol.is_session_id(session_id) or connection_id is None:
        log.warning("$disconnect without an authorized session: ignored")
        return
    config = common.Config.from_environ()
    if not common.mark_disconnected(config, session_id, connection_id):
        log.info(
            "session %s no longer uses connection %s: nothing to do", session_id, connection_id
        )
        return
    common.invoke_manager(
        config,
        {
            "action": "deinstrument_after_grace",
            "session_id": session_id,
            "connection_id": connection_id,
        },
    )
    log.info("session %s disconnected; restore scheduled after the grace period", session_id)
