"""REQUEST authorizer of ``$connect``: who is calling, and which session it may use.

The caller proves its IAM identity with a signed ``sts:GetCallerIdentity`` bound to the
session id (plldb/lambdas/caller.py); the session is then created for it, or resumed if it
created it (plldb/lambdas/session_gate.py). Everything else is a Deny, logged with the
reason; nothing here raises. Clients never write the sessions table themselves.
"""

from __future__ import annotations

import secrets
from typing import Any

from plldb import naming, protocol
from plldb.lambdas import common
from plldb.lambdas.caller import NotAuthenticated, authenticate
from plldb.lambdas.common import log
from plldb.lambdas.session_gate import Refused, open_session, spend_proof


def handler(event: Any, context: Any) -> dict[str, Any]:
    method_arn = _method_arn(event)
    try:
        session = _authorize(event)
    except (NotAuthenticated, Refused) as exc:
        log.warning("deny: %s", exc)
        session = None
    except Exception:  # an authorizer must answer; an error is a Deny
        log.exception("authorizer failed")
        session = None
    if session is None:
        return _policy("anonymous", "Deny", method_arn, {})
    session_id, stack_name, caller_arn, nonce = session
    context_out = {
        "sessionId": session_id,
        "stackName": stack_name,
        "callerArn": caller_arn,
        "instrumentNonce": nonce,  # to $connect only: the context never reaches the client
    }
    return _policy(caller_arn, "Allow", method_arn, context_out)


def _authorize(event: Any) -> tuple[str, str, str, str]:
    """(session id, stack name, caller ARN, instrument nonce) the connection may use;
    Refused otherwise."""
    if not isinstance(event, dict):
        raise Refused("event is not an object")
    query = event.get("queryStringParameters")
    query = query if isinstance(query, dict) else {}
    session_id = query.get("sessionId")
    if not protocol.is_session_id(session_id):
        raise Refused("missing or malformed sessionId")
    connection_id = common.connection_id_of(event)
    if connection_id is None:
        raise Refused("request without a connectionId")
    config = common.Config.from_environ()
    proof = _header(event, naming.IDENTITY_HEADER)
    caller = authenticate(proof, session_id, common.now(), config.management_url)
    account = config.connections_arn.split(":")[4] if config.connections_arn else ""
    if caller.account != account:
        raise Refused(f"{caller.arn} is not of this helper stack's account")
    spend_proof(config, caller)
    nonce = secrets.token_hex(16)
    stack_name = open_session(config, caller, session_id, query, connection_id, nonce)
    log.info("allow: session %s (stack %s) on %s for %s", session_id, stack_name,
             connection_id, caller.arn)
    return session_id, stack_name, caller.arn, nonce


def _header(event: dict[str, Any], name: str) -> str | None:
    """A request header, whatever its case (API Gateway keeps the client's)."""
    headers = event.get("headers")
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == name.lower() and isinstance(value, str):
            return value
    return None


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
