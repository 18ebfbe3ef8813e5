"""Events and results too large for a WebSocket message travel through the payload bucket.

The local tool holds no S3 rights (docs/security.md, "Payloads"): the shim presigns, with
the function's own credentials, a GET URL for an offloaded event and a PUT URL for the
request's result, and sends them in the ``invocation`` message over the session's
connection only. This module uses those URLs with plain HTTP(S) requests. Only payloads
go there (under ``payloads/``, expired by the bucket's lifecycle rule after a day);
credentials and environments never do.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from plldb import limits
from plldb.cloud.aws import AwsContext

TRANSFER_TIMEOUT_SECONDS = 60  # per blocking socket operation, not for the whole transfer
GLOBAL_S3_REGION = "us-east-1"  # botocore presigns for s3.amazonaws.com there


class PayloadError(RuntimeError):
    """A payload could not be downloaded or uploaded; the text says which and why."""


@dataclass(frozen=True)
class PayloadPlace:
    """Where payload URLs may point: the helper stack's bucket, on S3's endpoint.

    A message's URL is fetched or uploaded to with a plain HTTP request, so a URL naming any
    other host would make this machine fetch from, or send a result to, wherever the message
    says. Accepted: ``https`` on the region's S3 endpoint (virtual-hosted or path-style), and
    the S3 endpoint the developer's own AWS configuration names (``AWS_ENDPOINT_URL_S3`` or
    ``AWS_ENDPOINT_URL``: the local cloud's), compared by scheme, host and port exactly.
    """

    bucket: str
    region: str
    configured_endpoint: str  # the endpoint URL of the developer's boto3 S3 client

    def origins(self) -> list[tuple[str, str, int | None]]:
        """(scheme, host, port) of every accepted S3 endpoint; port None: the scheme's."""
        suffix = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
        found: list[tuple[str, str, int | None]] = [("https", f"s3.{self.region}.{suffix}", None)]
        if self.region == GLOBAL_S3_REGION:
            found.append(("https", f"s3.{suffix}", None))
        configured = urlsplit(self.configured_endpoint)
        if configured.hostname:
            found.append((configured.scheme, configured.hostname, _port(configured)))
        return found

    def problem(self, url: str, key: str) -> str | None:
        """Why ``url`` is not the URL of object ``key`` of the bucket, or None."""
        parts = urlsplit(url)
        path = unquote(parts.path)
        for scheme, host, port in self.origins():
            if (parts.scheme, _port(parts)) != (scheme, port):
                continue
            if parts.hostname == f"{self.bucket}.{host}" and path == f"/{key}":
                return None
            if parts.hostname == host and path == f"/{self.bucket}/{key}":
                return None
        accepted = ", ".join(f"{s}://{h}{f':{p}' if p else ''}" for s, h, p in self.origins())
        return (f"{parts.scheme}://{parts.netloc}{parts.path} is not object {key} of the helper "
                f"stack's bucket {self.bucket} on S3 (accepted endpoints: {accepted})")


def _port(parts: Any) -> int | None:
    """The URL's port, None when it is the scheme's default (or the URL has none)."""
    try:
        port = parts.port
    except ValueError:  # not a number: never an accepted endpoint
        return -1
    return None if port == {"https": 443, "http": 80}.get(parts.scheme) else port


def place_of(ctx: AwsContext, bucket: str) -> PayloadPlace:
    """The helper bucket as this machine's AWS configuration reaches it (no AWS call)."""
    return PayloadPlace(bucket, ctx.region_name, ctx.client("s3").meta.endpoint_url)


def check_url(place: PayloadPlace, ref: dict[str, Any], field: str, expected_key: str) -> None:
    """PayloadError, before any request, unless ``ref`` (an ``event_ref`` or ``result_upload``)
    names this request's object of the helper bucket and its URL is that object's."""
    if ref.get("bucket") != place.bucket or ref["key"] != expected_key:
        raise PayloadError(
            f"{field} names object {ref['key']} of bucket {ref.get('bucket')}, not this "
            f"request's {expected_key} of the helper stack's bucket {place.bucket}: nothing "
            "was transferred"
        )
    problem = place.problem(ref["url"], ref["key"])
    if problem:
        raise PayloadError(f"{field} refused: {problem}; nothing was transferred")


def fetch(ref: dict[str, Any]) -> bytes:
    """The bytes of an offloaded event, through the presigned GET URL of a validated ``event_ref``."""
    body = _request(urllib.request.Request(ref["url"], method="GET"), f"download {ref['key']}")
    if len(body) != ref["size"]:
        raise PayloadError(
            f"download {ref['key']}: got {len(body)} bytes, the invocation said {ref['size']}"
        )
    return body


def upload(target: dict[str, Any] | None, body: bytes) -> dict[str, Any]:
    """PUT ``body`` to the invocation's ``result_upload`` URL; the ``result_ref`` to send."""
    if target is None:
        raise PayloadError(
            f"the result of {len(body)} bytes is too large for a message, and the invocation "
            "carries no upload URL (result_upload): update the helper stack with `plldb bootstrap`"
        )
    if len(body) > limits.MAX_PAYLOAD:
        raise PayloadError(f"the result of {len(body)} bytes is over the {limits.MAX_PAYLOAD} byte limit")
    request = urllib.request.Request(
        target["url"],
        data=body,
        method="PUT",
        # Not signed; without it urllib sends a form type that some servers parse as a form.
        headers={"Content-Type": "application/octet-stream"},
    )
    _request(request, f"upload {target['key']}")
    return {"bucket": target["bucket"], "key": target["key"], "size": len(body)}


def _request(request: urllib.request.Request, what: str) -> bytes:
    """The response body; PayloadError with S3's answer when the request fails."""
    try:
        with urllib.request.urlopen(request, timeout=TRANSFER_TIMEOUT_SECONDS) as response:
            return response.read(limits.MAX_PAYLOAD + 1)
    except urllib.error.HTTPError as exc:
        raise PayloadError(f"{what}: HTTP {exc.code}: {_s3_reason(exc.read(4096))}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise PayloadError(f"{what}: {exc}") from exc


def _s3_reason(body: bytes) -> str:
    """``Code: Message`` of S3's XML error document, or the start of whatever came back."""
    text = body.decode(errors="replace")
    found = [re.search(f"<{tag}>(.*?)</{tag}>", text, re.DOTALL) for tag in ("Code", "Message")]
    if all(found):
        return ": ".join(match.group(1).strip() for match in found if match)
    return " ".join(text.split())[:300] or "no details"
