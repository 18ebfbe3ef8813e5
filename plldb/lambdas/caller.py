"""Who is calling: the caller's ARN, proven by a signed ``sts:GetCallerIdentity``.

API Gateway's REQUEST authorizer sees only the upgrade request. ``plldb attach`` sends in it
the headers of a GetCallerIdentity request signed (SigV4) with the developer's own
credentials, the session id among the signed headers. Replaying that request to STS proves
who signed it: STS checks the signature and the credentials' validity and answers with
their ARN. The same scheme authenticates AWS principals to HashiCorp Vault and to EKS.

What the replay trusts from the client is only its headers. The URL is built here (the
regional STS endpoint of this Lambda's region, or the custom endpoint a local cloud sets) and
the body is a constant, so a client can neither make the authorizer call something else nor
ask STS anything but "who signed this?". Before STS is asked, the proof must be signed for
that very host (``host`` among the signed headers: a mismatch would only come back from STS
as SignatureDoesNotMatch), with a credential scope of this region and ``sts``, for one
session and for this API (signed headers), dated no more than IDENTITY_MAX_AGE_SECONDS ago
nor IDENTITY_MAX_FUTURE_SECONDS ahead. Each mismatch is named in the Deny's log line. That
a proof is used once is recorded by the session gate (plldb/lambdas/session_gate.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime, timezone

import botocore.session

from plldb import naming
from plldb.lambdas import common
from plldb.lambdas.common import log

STS_TIMEOUT_SECONDS = 5
_REQUIRED_SIGNED = ("host", "x-amz-date")


class NotAuthenticated(Exception):
    """The proof is missing, malformed, stale, for another session, or refused by STS."""


@dataclass(frozen=True)
class Caller:
    arn: str  # the session's owner (naming.session_owner of STS's answer)
    account: str
    signed_at: float = 0.0  # epoch seconds of the proof's X-Amz-Date
    proof_digest: str = ""  # identifies the proof, to use it once


def authenticate(proof: str | None, session_id: str, now: float, audience: str) -> Caller:
    """The principal that signed ``proof`` for ``session_id`` and this API (``audience``, the
    helper stack's management URL); NotAuthenticated otherwise."""
    headers = _proof_headers(proof)
    signed = _signed_headers(headers)
    _check_bound_to(headers, signed, session_id, audience)
    signed_at = _check_date(headers, now)
    endpoint = verifier_url()
    _check_signed_for(headers, endpoint)
    caller = _ask_sts(endpoint, headers, signed)
    digest = hashlib.sha256(headers["authorization"].encode()).hexdigest()
    return Caller(caller.arn, caller.account, signed_at, digest)


def verifier_url() -> str:
    """Where proofs are replayed: a custom STS endpoint when one is configured (a local
    cloud), else the regional endpoint of this Lambda's region."""
    custom = os.environ.get("AWS_ENDPOINT_URL_STS") or os.environ.get("AWS_ENDPOINT_URL")
    if custom:
        return custom.rstrip("/")
    sts = common.client("sts")
    region = os.environ.get("AWS_REGION") or sts.meta.region_name
    return naming.sts_url(region, _dns_suffix(sts.meta.partition))


@functools.cache
def _dns_suffix(partition: str) -> str:
    """The partition's DNS suffix, from the runtime's botocore data; once per execution
    environment (a new botocore session loads its endpoint data: about 50 ms per connect)."""
    resolver = botocore.session.get_session().get_component("endpoint_resolver")
    return resolver.get_partition_dns_suffix(partition)


def _signed_headers(headers: dict[str, str]) -> list[str]:
    for part in headers.get("authorization", "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "SignedHeaders":
            return value.split(";")
    return []


def _credential_scope(headers: dict[str, str]) -> list[str]:
    """``[key id, date, region, service, "aws4_request"]`` of the signature."""
    authorization = headers.get("authorization", "")
    credential = authorization.split("Credential=", 1)[1].split(",", 1)[0] if "Credential=" in authorization else ""
    return credential.split("/")


def _check_signed_for(headers: dict[str, str], endpoint: str) -> None:
    """The proof names this verifier's STS host and region: otherwise STS would only answer
    SignatureDoesNotMatch, without saying why."""
    own = urllib.parse.urlsplit(endpoint)
    host = headers.get("host")
    if host != own.netloc:
        raise NotAuthenticated(
            f"the proof is signed for STS host {host!r}, but this helper stack verifies proofs "
            f"with {own.netloc!r}: attach with the helper stack's region (--region), with a plldb "
            "that signs for the regional STS endpoint, and without a custom STS endpoint"
        )
    scope = _credential_scope(headers)
    region = os.environ.get("AWS_REGION", "")
    if len(scope) != 5 or scope[3] != "sts" or scope[2] != region:
        found = "/".join(scope[2:4]) if len(scope) == 5 else "none"
        raise NotAuthenticated(
            f"the proof's credential scope is {found!r}, not {region}/sts: sign it for STS in "
            f"the helper stack's region {region} (--region {region})"
        )


def _proof_headers(proof: str | None) -> dict[str, str]:
    if not proof or len(proof) > naming.IDENTITY_PROOF_LIMIT:
        raise NotAuthenticated(f"no {naming.IDENTITY_HEADER} header, or one over the limit")
    try:
        decoded = json.loads(base64.b64decode(proof, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise NotAuthenticated(f"{naming.IDENTITY_HEADER} is not base64 JSON") from exc
    if not isinstance(decoded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
    ):
        raise NotAuthenticated(f"{naming.IDENTITY_HEADER} is not an object of strings")
    return {name.lower(): value for name, value in decoded.items()}


def _check_bound_to(headers: dict[str, str], signed: list[str], session_id: str, audience: str) -> None:
    """The host, date, session and audience headers are signed, and name this session and
    this API."""
    session_header = naming.IDENTITY_SESSION_HEADER.lower()
    audience_header = naming.IDENTITY_AUDIENCE_HEADER.lower()
    for name, shown in ((session_header, naming.IDENTITY_SESSION_HEADER),
                        (audience_header, naming.IDENTITY_AUDIENCE_HEADER),
                        *((h, h) for h in _REQUIRED_SIGNED)):
        if name not in signed or name not in headers:
            raise NotAuthenticated(f"{shown} is not among the signed headers")
    if headers[session_header] != session_id:
        raise NotAuthenticated("the proof was signed for another session")
    if headers[audience_header] != audience:
        raise NotAuthenticated(
            f"the proof is addressed to {headers[audience_header]!r}, not to this helper stack "
            f"({audience!r})"
        )


def _check_date(headers: dict[str, str], now: float) -> float:
    """The proof's signing time; refused when too old, or dated too far ahead."""
    try:
        signed_at = datetime.strptime(headers.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ")
    except ValueError as exc:
        raise NotAuthenticated("the proof has no valid X-Amz-Date") from exc
    epoch = signed_at.replace(tzinfo=timezone.utc).timestamp()
    age = now - epoch
    if age > naming.IDENTITY_MAX_AGE_SECONDS:
        raise NotAuthenticated(f"the proof was signed {age:.0f} s ago")
    if -age > naming.IDENTITY_MAX_FUTURE_SECONDS:
        raise NotAuthenticated(f"the proof is dated {-age:.0f} s in the future (check the clock)")
    return epoch


def _ask_sts(endpoint: str, headers: dict[str, str], signed: list[str]) -> Caller:
    """Replay the signed request (its signed headers, the constant body) to ``endpoint``."""
    forwarded = {name: headers[name] for name in signed if name in headers and name != "host"}
    forwarded["authorization"] = headers["authorization"]
    if "x-amz-security-token" in headers:
        forwarded["x-amz-security-token"] = headers["x-amz-security-token"]
    forwarded["content-type"] = naming.IDENTITY_CONTENT_TYPE
    request = urllib.request.Request(
        endpoint, data=naming.IDENTITY_BODY.encode(), headers=forwarded, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=STS_TIMEOUT_SECONDS) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise NotAuthenticated(f"STS refused the proof (HTTP {exc.code}): {detail}") from exc
    return _caller_of(body)


def _caller_of(body: bytes) -> Caller:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise NotAuthenticated("STS answered something that is not XML") from exc
    values = {element.tag.rsplit("}", 1)[-1]: (element.text or "") for element in root.iter()}
    if not values.get("Arn") or not values.get("Account"):
        raise NotAuthenticated("STS answered without an Arn")
    log.info("caller authenticated as %s", values["Arn"])
    return Caller(arn=naming.session_owner(values["Arn"]), account=values["Account"])
