"""Events and results too large for a WebSocket message travel through the bootstrap bucket.

Only payloads go there (under ``payloads/``, expired by the bucket's lifecycle rule after a
day); credentials and environments never do.
"""

from __future__ import annotations

from typing import Any

from plldb import protocol as p
from plldb.aws import AwsContext


class PayloadStore:
    """Reads and writes offloaded payloads with the debugger role's credentials."""

    def __init__(self, ctx: AwsContext, bucket: str) -> None:
        self.s3 = ctx.client("s3")
        self.bucket = bucket

    def fetch(self, ref: dict[str, Any]) -> bytes:
        """The bytes a validated ``*_ref`` points to."""
        return self.s3.get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"].read()

    def offload(self, session_id: str, request_id: str, direction: str, body: bytes) -> dict:
        """Upload ``body`` and return the reference to send instead of it."""
        if len(body) > p.MAX_PAYLOAD:
            raise ValueError(f"payload of {len(body)} bytes is over the {p.MAX_PAYLOAD} limit")
        key = p.payload_key(session_id, request_id, direction)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return {"bucket": self.bucket, "key": key, "size": len(body)}
