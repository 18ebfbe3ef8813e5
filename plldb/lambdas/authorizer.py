"""REQUEST authorizer of ``$connect``: a session id opens exactly one connection.

The session id in the query string is the shared secret written by ``plldb attach``. One
conditional UpdateItem both checks it (an existing, unexpired PENDING session) and consumes
it (ACTIVE with this connection's id), so a replayed or concurrent second use finds the
session ACTIVE and is denied. Every other outcome is a Deny; nothing here raises.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from plldb import protocol
from plldb.lambdas import common
from plldb.lambdas.common import log

_EXPIRED_OR_USED = "ConditionalCheckFailedException"


def handler(event: Any, context: Any) -> dict[str, Any]:
    method_arn = _method_arn(event)
    try:
        session = _authorize(event)
    except Exception:  # an authorizer must answer; an error is a Deny
        log.exception("authorizer failed")
        session = None
    if session is None:
        return _policy("anonymous", "Deny", method_arn, {})
    session_id, stack_name = session
    context_out = {"sessionId": session_id, "stackName": stack_name}
    return _policy(session_id, "Allow", method_arn, context_out)


def _authorize(event: Any) -> tuple[str, str] | None:
    """The (session id, stack name) the connection may use, or None with the reason logged."""
    if not isinstance(event, dict):
        log.warning("deny: event is not an object")
        return None
    query = event.get("queryStringParameters")
    session_id = query.get("sessionId") if isinstance(query, dict) else None
    if not protocol.is_session_id(session_id):
        log.warning("deny: missing or malformed sessionId")
        return None
    connection_id = common.connection_id_of(event)
    if connection_id is None:
        log.warning("deny: request without a connectionId")
        return None
    config = common.Config.from_environ()
    now = common.now()
    table = common.client("dynamodb")
    try:
        result = table.update_item(
            TableName=config.sessions_table,
            Key={protocol.A_SESSION_ID: {"S": session_id}},
            ConditionExpression=(
                "attribute_exists(#id) AND #kind = :session AND #status = :pending AND #ttl > :now"
            ),
            UpdateExpression="SET #status = :active, #conn = :conn, #ttl = :ttl",
            ExpressionAttributeNames={
                "#id": protocol.A_SESSION_ID,
                "#kind": protocol.A_KIND,
                "#status": protocol.A_STATUS,
                "#ttl": protocol.A_TTL,
                "#conn": protocol.A_CONNECTION_ID,
            },
            ExpressionAttributeValues={
                ":session": {"S": protocol.KIND_SESSION},
                ":pending": {"S": protocol.PENDING},
                ":active": {"S": protocol.ACTIVE},
                ":now": {"N": str(now)},
                ":ttl": {"N": str(now + protocol.SESSION_TTL_SECONDS)},
                ":conn": {"S": connection_id},
            },
            ReturnValues="ALL_NEW",
        )
    except botocore.exceptions.ClientError as exc:
        if common.error_code(exc) == _EXPIRED_OR_USED:
            log.warning("deny: session %s is unknown, expired or already used", session_id)
            return None
        raise
    stack_name = result["Attributes"].get(protocol.A_STACK_NAME, {}).get("S", "")
    log.info("allow: session %s (stack %s) on connection %s", session_id, stack_name, connection_id)
    return session_id, stack_name


def _method_arn(event: Any) -> str:
    arn = event.get("methodArn") if isinstance(event, dict) else None
    return arn if isinstance(arn, str) and arn else "*"


def _policy(principal: str, effect: str, resource: str, context: dict[str, str]) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }
