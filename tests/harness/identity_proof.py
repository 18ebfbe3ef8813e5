"""Connecting to the gateway emulator as an IAM identity, as ``plldb attach`` does.

The authorizer opens a session only for a caller that proves who it is with a signed
``sts:GetCallerIdentity`` (plldb/lambdas/caller.py). Tests sign with whatever credentials
the process has (the harness's, or a principal's), through the product's own signer.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import boto3
from websockets.sync.client import ClientConnection, connect

from plldb import naming
from plldb.cloud.aws import AwsContext
from plldb.session.identity import identity_proof

# A principal with an identity and no rights: enough to prove who it is (GetCallerIdentity
# needs no permission), nothing more.
NO_RIGHTS = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}


def proof_headers(session_id: str, session: boto3.Session | None = None) -> dict[str, str]:
    """The upgrade headers that prove the caller's identity for ``session_id``."""
    ctx = AwsContext(_session=session or boto3.Session())
    return {naming.IDENTITY_HEADER: identity_proof(ctx, session_id)}


def caller_arn(session: boto3.Session | None = None) -> str:
    """The ARN STS gives these credentials: what the authorizer records as the creator."""
    return (session or boto3.Session()).client("sts").get_caller_identity()["Arn"]


def connect_session(
    websocket_url: str,
    session_id: str,
    session: boto3.Session | None = None,
    query: dict[str, str] | None = None,
    **kwargs: Any,
) -> ClientConnection:
    """A synchronous WebSocket connect to ``session_id`` as ``session``'s identity (default:
    this process's credentials), with more ``query`` parameters (e.g. a new session's
    stackName)."""
    kwargs.setdefault("open_timeout", 10)
    parameters = urllib.parse.urlencode({"sessionId": session_id, **(query or {})})
    return connect(
        f"{websocket_url}?{parameters}",
        additional_headers=proof_headers(session_id, session),
        **kwargs,
    )
