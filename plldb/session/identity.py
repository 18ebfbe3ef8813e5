"""Proving who attaches: a signed ``sts:GetCallerIdentity`` for one session.

The helper stack's authorizer replays these headers to STS to learn the developer's ARN
(plldb/lambdas/caller.py). They are signed with the developer's own credentials, never with
a role plldb assumes, so sessions belong to real identities; and a fresh proof is made for
every connect, because one is valid for minutes only (and credentials get refreshed).
"""

from __future__ import annotations

import base64
import json

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from plldb import naming
from plldb.cloud.aws import AwsAccessError, AwsContext


def identity_proof(ctx: AwsContext, session_id: str) -> str:
    """The value of the ``X-PLLDB-Identity`` header for connecting to ``session_id``."""
    sts = ctx.client("sts")
    credentials = ctx.session.get_credentials()
    if credentials is None:
        raise AwsAccessError(
            "No AWS credentials found: run `aws configure`, `aws sso login`, or pass --profile"
        )
    request = AWSRequest(
        method="POST",
        url=sts.meta.endpoint_url,
        data=naming.IDENTITY_BODY,
        headers={
            "Content-Type": naming.IDENTITY_CONTENT_TYPE,
            naming.IDENTITY_SESSION_HEADER: session_id,
        },
    )
    SigV4Auth(credentials.get_frozen_credentials(), "sts", sts.meta.region_name).add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    return base64.b64encode(json.dumps(headers).encode()).decode()
