"""Proving who attaches: a signed ``sts:GetCallerIdentity`` for one session of one API.

The helper stack's authorizer replays these headers to STS to learn the developer's ARN
(plldb/lambdas/caller.py). They are signed with the developer's own credentials, never with
a role plldb assumes, so sessions belong to real identities; and a fresh proof is made for
every connect, because one is valid for minutes only, and once.

What is signed, so that the authorizer can check it before asking STS: the STS host (the
regional endpoint of the helper stack's region, which is also where the authorizer replays
it; a custom STS endpoint is kept as configured, for local clouds), the session id, and the
audience: the helper stack's management URL, so that no other verifier built on
GetCallerIdentity would accept the proof, nor another plldb helper stack.
"""

from __future__ import annotations

import base64
import functools
import json
import urllib.parse
import uuid

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from plldb import naming
from plldb.cloud.aws import AwsAccessError, AwsContext


def identity_proof(ctx: AwsContext, session_id: str, audience: str) -> str:
    """The value of the ``X-PLLDB-Identity`` header for connecting to ``session_id`` of the
    helper stack whose management URL is ``audience``."""
    credentials = ctx.session.get_credentials()
    if credentials is None:
        raise AwsAccessError(
            "No AWS credentials found: run `aws configure`, `aws sso login`, or pass --profile"
        )
    url = signing_url(ctx)
    request = AWSRequest(
        method="POST",
        url=url,
        data=naming.IDENTITY_BODY,
        headers={
            "Host": urllib.parse.urlsplit(url).netloc,  # sent, so the verifier can check it
            "Content-Type": naming.IDENTITY_CONTENT_TYPE,
            naming.IDENTITY_SESSION_HEADER: session_id,
            naming.IDENTITY_AUDIENCE_HEADER: audience,
            naming.IDENTITY_NONCE_HEADER: uuid.uuid4().hex,
        },
    )
    SigV4Auth(credentials.get_frozen_credentials(), "sts", ctx.region_name).add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    return base64.b64encode(json.dumps(headers).encode()).decode()


def signing_url(ctx: AwsContext) -> str:
    """The STS endpoint the proof is signed for: the regional one of the helper stack's
    region, whatever the SDK would pick (the global endpoint with older boto3 or
    ``AWS_STS_REGIONAL_ENDPOINTS=legacy``, a FIPS endpoint); a custom endpoint
    (``AWS_ENDPOINT_URL_STS``/``AWS_ENDPOINT_URL``, a local cloud) stays as configured."""
    sts = ctx.client("sts")
    suffix = dns_suffix(sts.meta.partition)
    host = urllib.parse.urlsplit(sts.meta.endpoint_url).hostname or ""
    if not host.endswith(f".{suffix}"):
        return sts.meta.endpoint_url.rstrip("/")
    return naming.sts_url(ctx.region_name, suffix)


@functools.cache
def dns_suffix(partition: str) -> str:
    """The DNS suffix of an AWS partition (amazonaws.com, amazonaws.com.cn, ...); looked up
    once per process: a new botocore session loads its endpoint data (about 50 ms), and a
    proof is made for every connect."""
    resolver = botocore.session.get_session().get_component("endpoint_resolver")
    return resolver.get_partition_dns_suffix(partition)
