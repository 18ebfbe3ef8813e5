"""Connecting to the gateway emulator as an IAM identity, as ``plldb attach`` does.

The authorizer opens a session only for a caller that proves who it is with a signed
``sts:GetCallerIdentity`` (plldb/lambdas/caller.py). Tests sign with whatever credentials
the process has (the harness's, or a principal's), through the product's own signer.
"""

from __future__ import annotations

import os
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


# The proof's audience is the helper stack's management URL (plldb/session/identity.py):
# a local cloud registers its own; an in-process gateway sets PLLDB_MANAGEMENT_URL.
_audiences: dict[str, str] = {}  # websocket URL -> management URL


def register_audience(websocket_url: str, management_url: str) -> None:
    """Proofs for connects to ``websocket_url`` are addressed to ``management_url``."""
    _audiences[websocket_url] = management_url


def audience_for(websocket_url: str | None = None) -> str:
    return _audiences.get(websocket_url or "") or os.environ.get(naming.ENV_MANAGEMENT_URL, "")


def proof_headers(
    session_id: str, session: boto3.Session | None = None, audience: str | None = None
) -> dict[str, str]:
    """The upgrade headers that prove the caller's identity for ``session_id``, addressed to
    ``audience`` (default: the in-process gateway's management URL)."""
    ctx = AwsContext(_session=session or boto3.Session())
    proof = identity_proof(ctx, session_id, audience if audience is not None else audience_for())
    return {naming.IDENTITY_HEADER: proof}


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
        additional_headers=proof_headers(session_id, session, audience_for(websocket_url)),
        **kwargs,
    )
