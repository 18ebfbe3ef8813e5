"""AWS Signature Version 4 with the standard library: the shim's calls without botocore.

The signing steps of the AWS documentation ("Create a signed AWS API request"): canonical
request, string to sign, signing key, signature. Proven against the AWS SigV4 test suite
and against botocore's ``SigV4Auth`` (tests/test_table_reader.py).
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse

TYPE_CHECKING = False  # typing itself costs an import: annotations are not evaluated here
if TYPE_CHECKING:
    from collections.abc import Mapping


class Credentials:
    """An access key and its secret, and the session token of temporary credentials."""

    __slots__ = ("access_key", "secret_key", "token")

    def __init__(self, access_key: str, secret_key: str, token: str | None = None) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.token = token

    def __repr__(self) -> str:  # never the secret
        return f"Credentials({self.access_key!r}, token={'yes' if self.token else 'no'})"


def authorization(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str,
) -> str:
    """The ``Authorization`` header of a request signed with Signature Version 4.

    Every header in ``headers`` is signed; they must hold ``Host`` and ``X-Amz-Date``
    (and ``X-Amz-Security-Token`` for temporary credentials). The request has no query
    string. Steps as in the AWS documentation ("Create a signed AWS API request"):
    canonical request, string to sign, signing key, signature.
    """
    canonical = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    amz_date = canonical["x-amz-date"]
    signed = ";".join(sorted(canonical))
    lines = [f"{name}:{canonical[name]}" for name in sorted(canonical)]
    path = urllib.parse.quote(path or "/", safe="/~")
    payload = hashlib.sha256(body).hexdigest()
    # method, path, query string (none), headers, a blank line, signed headers, payload hash
    canonical_request = "\n".join([method, path, "", *lines, "", signed, payload])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}"
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )


def host_header(url: str) -> str:
    """The Host header botocore signs for ``url``: lower case, no default port."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    return host if parts.port in (None, default_port) else f"{host}:{parts.port}"
