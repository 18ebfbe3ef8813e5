"""``$default``: every message the local tool sends (``response``, ``error``, ``detach``, ``ping``).

A result is accepted only for a request of the sending connection's own session that is
still pending, in one conditional write on the PLLDBDebugger item: a forged, late or
duplicate answer fails the condition, is answered with ``rejected`` and changes nothing.
The connection's session comes from the authorizer's context, which API Gateway attaches to
every message of the connection, so no lookup is needed. Nothing here raises: API Gateway
would only log it, while a ``rejected`` message tells the client why.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from plldb import naming, protocol
from plldb.lambdas import common
from plldb.lambdas.common import log


def handler(event: Any, context: Any) -> dict[str, Any]:
    connection = common.Connection(common.connection_id_of(event), "")
    try:
        config = common.Config.from_environ()
        connection = common.Connection(connection.connection_id, config.management_url)
        reply = _handle(event, config, connection)
    except Exception:
        log.exception("message handling failed")
        reply = protocol.rejected_message("internal error while handling the message")
    if reply is not None:
        if reply.get("type") == protocol.TYPE_REJECTED:
            log.warning("rejected a message from %s: %s", connection.connection_id, reply["reason"])
        connection.post(reply)
    return {"statusCode": 200}


def _handle(event: Any, config: common.Config, connection: common.Connection) -> dict | None:
    """The reply to post to the sender (None for no reply)."""
    session_id = common.authorizer_context(event).get("sessionId")
    if not protocol.is_session_id(session_id) or connection.connection_id is None:
        return protocol.rejected_message("the connection has no authorized session")
    body = event.get("body") if isinstance(event, dict) else None
    try:
        message = protocol.parse_client_message(body)
    except protocol.ProtocolError as exc:
        return protocol.rejected_message(str(exc))
    action = message["action"]
    if action == protocol.ACTION_PING:
        return {"type": protocol.TYPE_PONG}
    if action == protocol.ACTION_DETACH:
        common.invoke_manager(
            config,
            {
                "action": "deinstrument",
                "session_id": session_id,
                "connection_id": connection.connection_id,
                "reply": True,
            },
        )
        return None
    return _record_result(message, session_id, config)


def _record_result(message: dict[str, Any], session_id: str, config: common.Config) -> dict | None:
    """Write a ``response``/``error`` to its PLLDBDebugger item if it is ours and pending."""
    names = {"#session": naming.A_SESSION_ID, "#status": naming.A_STATUS}
    condition = "#session = :session AND #status = :pending"
    values: dict[str, Any] = {
        ":session": {"S": session_id},
        ":pending": {"S": naming.REQUEST_PENDING},
    }
    if message["action"] == protocol.ACTION_ERROR:
        names["#out"] = naming.A_ERROR
        values[":out"] = {"S": protocol.encode(message["error"])}
        values[":done"] = {"S": naming.REQUEST_FAILED}
    elif "result_ref" in message:
        owner = _owner_of_ref(message["result_ref"], session_id, message["request_id"], config)
        if owner is None:
            return protocol.rejected_message(
                f"result_ref must name this request's response object in s3://{config.payload_bucket}"
            )
        names["#owner"] = naming.A_OWNER
        values[":owner"] = {"S": owner}
        condition += " AND #owner = :owner"
        names["#out"] = naming.A_PAYLOAD_REF
        values[":out"] = {"S": protocol.encode(message["result_ref"])}
        values[":done"] = {"S": naming.REQUEST_RESPONDED}
    else:
        names["#out"] = naming.A_RESPONSE
        values[":out"] = {"S": message["result"]}
        values[":done"] = {"S": naming.REQUEST_RESPONDED}
    try:
        common.client("dynamodb").update_item(
            TableName=config.debugger_table,
            Key={naming.A_REQUEST_ID: {"S": message["request_id"]}},
            ConditionExpression=condition,
            UpdateExpression="SET #status = :done, #out = :out",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except botocore.exceptions.ClientError as exc:
        if common.error_code(exc) != "ConditionalCheckFailedException":
            raise
        return protocol.rejected_message(
            f"request {message['request_id']} is not a pending request of this session"
        )
    log.info("%s recorded for request %s", message["action"], message["request_id"])
    return None


def _owner_of_ref(
    ref: dict[str, Any], session_id: str, request_id: str, config: common.Config
) -> str | None:
    """The owner (function ``aws:userid``) of a result reference that names this request's
    own response object, or None.

    The shim fetches whatever the reference names, so it must not name another session's
    payload or another bucket; the owner must also be the request's (checked in the write).
    """
    if ref["bucket"] != config.payload_bucket:
        return None
    return naming.payload_owner(ref["key"], session_id, request_id, "response")
