"""S3 presigned URLs (SigV4 query authentication) under the local cloud's IAM enforcement.

moto checks identities from the ``Authorization`` header only: with enforcement on, a
presigned request (its signature in the query string, no header) fails with a 500. AWS
checks a presigned URL like a signed call: the signature, computed over the method, the key
and the query with the signer's secret, must match; the URL must not be past
``X-Amz-Date + X-Amz-Expires``; and the signer's policies must allow the action on that key.

:func:`install` (run by the moto launcher in its own process) makes moto do the same:

* the handler of a presigned S3 request gets the ``Authorization``, ``X-Amz-Date`` and
  ``X-Amz-Security-Token`` headers that the query carries, so moto's identity check (and the
  call audit's recorder) sees who signed it;
* the signature moto recomputes is the query signature (``UNSIGNED-PAYLOAD``, the signed
  headers named in the query), so a URL whose key, method or query was changed is refused
  (``SignatureDoesNotMatch``), and an expired one is refused (``AccessDenied``,
  ``Request has expired``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from moto.iam import access_control
from moto.s3.exceptions import S3ClientError
from moto.s3.responses import S3Response
from werkzeug.datastructures import Headers

ALGORITHM = "AWS4-HMAC-SHA256"
SIGNATURE = "X-Amz-Signature"


class RequestExpiredError(S3ClientError):
    """S3's answer to a presigned URL used after its expiry."""

    def __init__(self) -> None:
        super().__init__("AccessDenied", "Request has expired")


def _query(path_or_url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(path_or_url).query, keep_blank_values=True))


def presigned_headers(headers: Any, url: str) -> Headers | None:
    """``headers`` plus what a SigV4 presigned ``url`` carries; None for other requests."""
    if "Authorization" in headers:
        return None
    query = _query(url)
    if query.get("X-Amz-Algorithm") != ALGORITHM or SIGNATURE not in query:
        return None
    merged = Headers(list(headers.items()))
    merged["Authorization"] = (
        f"{ALGORITHM} Credential={query.get('X-Amz-Credential', '')}, "
        f"SignedHeaders={query.get('X-Amz-SignedHeaders', '')}, Signature={query[SIGNATURE]}"
    )
    merged["X-Amz-Date"] = query.get("X-Amz-Date", "")
    if "X-Amz-Security-Token" in query:
        merged["X-Amz-Security-Token"] = query["X-Amz-Security-Token"]
    return merged


def expired(query: dict[str, str], now: datetime) -> bool:
    """Whether a presigned URL's ``X-Amz-Date + X-Amz-Expires`` has passed (or is unreadable)."""
    try:
        signed = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        return now > signed + timedelta(seconds=int(query["X-Amz-Expires"]))
    except (KeyError, ValueError):
        return True


def _with_presigned_headers(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def setup_class(self: Any, request: Any, full_url: Any = None, headers: Any = None) -> None:
        original(self, request, full_url, headers)
        merged = presigned_headers(self.headers, self.uri)
        if merged is not None:
            self.headers = merged

    return setup_class


def _query_signature(original: Callable[..., str]) -> Callable[..., str]:
    """moto's signature check, computed from the query for a presigned request."""

    @functools.wraps(original)
    def calculate(self: Any) -> str:
        query = _query(self._path)
        if SIGNATURE not in query:
            return original(self)
        if expired(query, datetime.now(timezone.utc)):
            raise RequestExpiredError()
        parts = urlsplit(self._path)
        unsigned = "&".join(p for p in parts.query.split("&") if not p.startswith(f"{SIGNATURE}="))
        signed_names = query.get("X-Amz-SignedHeaders", "").split(";")
        request = AWSRequest(
            method=self._method,
            url=urlunsplit(("", "", parts.path, unsigned, "")),
            headers={k: v for k, v in self._headers.items() if k.lower() in signed_names},
        )
        request.context["timestamp"] = query["X-Amz-Date"]
        auth = S3SigV4QueryAuth(self._access_key.create_credentials(), self._service, self._region)
        return auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)

    return calculate


def install() -> None:
    """Patch moto in this process (the moto launcher calls it once)."""
    S3Response.setup_class = _with_presigned_headers(S3Response.setup_class)  # type: ignore[method-assign]
    base = access_control.IAMRequestBase
    base._calculate_signature = _query_signature(base._calculate_signature)  # type: ignore[method-assign]
