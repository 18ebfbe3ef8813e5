"""Who is calling: the caller's ARN, proven by a signed ``sts:GetCallerIdentity``.

API Gateway's REQUEST authorizer sees only the upgrade request. ``plldb attach`` sends in it
the headers of a GetCallerIdentity request signed (SigV4) with the developer's own
credentials, the session id among the signed headers. Replaying that request to STS proves
who signed it: STS checks the signature and the credentials' validity and answers with
their ARN. The same scheme authenticates AWS principals to HashiCorp Vault and to EKS.

What the replay trusts from the client is only its headers. The URL is this Lambda's own
STS endpoint and the body a constant, so a client can neither make the authorizer call
something else nor ask STS anything but "who signed this?". A proof is bound to one
session (a signed header) and is refused after IDENTITY_MAX_AGE_SECONDS.
"""

from __future__ import annotations

import base64
import binascii
import json
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime, timezone

from plldb import naming
from plldb.lambdas import common
from plldb.lambdas.common import log

STS_TIMEOUT_SECONDS = 5
_FORWARDED = ("authorization", "x-amz-date", "x-amz-security-token")


class NotAuthenticated(Exception):
    """The proof is missing, malformed, stale, for another session, or refused by STS."""


@dataclass(frozen=True)
class Caller:
    arn: str
    account: str


def authenticate(proof: str | None, session_id: str, now: float) -> Caller:
    """The principal that signed ``proof`` for ``session_id``; NotAuthenticated otherwise."""
    headers = _proof_headers(proof)
    _check_bound_to(headers, session_id, now)
    endpoint = common.client("sts").meta.endpoint_url
    host = urllib.parse.urlsplit(endpoint).netloc
    if headers.get("host", host) != host:
        raise NotAuthenticated(f"signed for host {headers['host']!r}, not this region's STS")
    return _ask_sts(endpoint, headers)


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


def _check_bound_to(headers: dict[str, str], session_id: str, now: float) -> None:
    """The session header is signed and names this session; the signature is fresh."""
    authorization = headers.get("authorization", "")
    signed = ""
    for part in authorization.split(","):
        name, _, value = part.strip().partition("=")
        if name == "SignedHeaders":
            signed = value
    session_header = naming.IDENTITY_SESSION_HEADER.lower()
    if session_header not in signed.split(";"):
        raise NotAuthenticated(f"{naming.IDENTITY_SESSION_HEADER} is not among the signed headers")
    if headers.get(session_header) != session_id:
        raise NotAuthenticated("the proof was signed for another session")
    try:
        signed_at = datetime.strptime(headers.get("x-amz-date", ""), "%Y%m%dT%H%M%SZ")
    except ValueError as exc:
        raise NotAuthenticated("the proof has no valid X-Amz-Date") from exc
    age = now - signed_at.replace(tzinfo=timezone.utc).timestamp()
    if abs(age) > naming.IDENTITY_MAX_AGE_SECONDS:
        raise NotAuthenticated(f"the proof was signed {age:.0f} s ago")


def _ask_sts(endpoint: str, headers: dict[str, str]) -> Caller:
    forwarded = {name: headers[name] for name in _FORWARDED if name in headers}
    forwarded[naming.IDENTITY_SESSION_HEADER.lower()] = headers[
        naming.IDENTITY_SESSION_HEADER.lower()
    ]
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
    return Caller(arn=values["Arn"], account=values["Account"])
