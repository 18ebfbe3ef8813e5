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
from typing import Any

from plldb import limits

TRANSFER_TIMEOUT_SECONDS = 60  # per blocking socket operation, not for the whole transfer


class PayloadError(RuntimeError):
    """A payload could not be downloaded or uploaded; the text says which and why."""


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
