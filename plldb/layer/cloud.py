"""The shim's view of the helper stack: the session, the request item, payloads, the connection.

Everything here runs inside the debugged function, under its own role, with the grants the
manager adds while the function is instrumented (PLLDBShimAccess): read the session, write
and read the request item, put/get objects under ``payloads/`` of the bucket, and post to the
session's connection. Credentials never leave through this module: the request item holds
the environment *without* secrets and the bucket holds only event and response bodies.

The local tool holds no S3 rights: it reaches a payload object only through the URLs this
module presigns (a GET for an offloaded event, a PUT for the request's result), which travel
in the ``invocation`` message over the session's connection only (docs/security.md).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from plldb import limits, naming
from plldb.layer.config import ShimConfig, ShimConfigError  # noqa: F401 - re-exported

log = logging.getLogger("plldb.shim")

# Short timeouts and few retries: every call is on the invocation's critical path, and the
# wait loop retries reads on its own.
_CLIENT_CONFIG = botocore.config.Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=3,
    read_timeout=10,
)

# Presigned URLs: SigV4 (S3 refuses SigV2 in newer regions), on the regional
# virtual-hosted endpoint (bucket.s3.<region>.amazonaws.com). botocore would presign for the
# global endpoint, which may answer with a 307 redirect (shortly after the bucket was
# created); the local tool does not follow a redirect for a PUT. A custom endpoint (the local
# cloud's moto on 127.0.0.1) keeps path-style addressing.
_S3_CONFIG = botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "virtual"})


class PayloadError(RuntimeError):
    """An event or response cannot travel (too large, no bucket, foreign reference)."""


@dataclass(frozen=True)
class Session:
    """The session item as the shim needs it; ``status`` is None when the item is gone."""

    status: str | None
    connection_id: str | None = None
    expired: bool = False  # its TTL has passed (DynamoDB deletes such items days later)
    disconnected_at: float | None = None  # epoch seconds, when DISCONNECTED

    @property
    def gone(self) -> bool:
        """No debugger will come back: run the function in the cloud."""
        return self.status in (None, naming.CLOSED) or self.expired

    @property
    def label(self) -> str:
        """The session's state in words, for the function's log."""
        if self.status is None:
            return "deleted"
        return f"{self.status} and past its TTL" if self.expired else self.status

    @property
    def connected(self) -> bool:
        return self.status == naming.ACTIVE and bool(self.connection_id)


@dataclass(frozen=True)
class Answer:
    """What the local tool sent for a request: a response body or an error in Lambda's shape."""

    body: bytes | None = None
    error: dict[str, Any] | None = None
    ref: dict[str, Any] | None = None  # the bucket object the body came from, if it did


def _iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


class Cloud:
    """boto3 clients for the helper stack, created once per execution environment."""

    def __init__(self, config: ShimConfig) -> None:
        self.config = config
        self.dynamodb = boto3.client("dynamodb", config=_CLIENT_CONFIG)
        self.s3 = boto3.client("s3", config=_CLIENT_CONFIG.merge(_S3_CONFIG))
        self.management = boto3.client(
            "apigatewaymanagementapi", endpoint_url=config.management_url, config=_CLIENT_CONFIG
        )
        self.sts = boto3.client("sts", config=_CLIENT_CONFIG)
        self._owner: str | None = None
        # reads of the request item and of the session, for the per-invocation log line
        self.reads = 0
        self.session_reads = 0

    @property
    def owner(self) -> str:
        """This function's ``aws:userid`` (``<role id>:<function name>``), asked once.

        The shim policy lets a function's credentials reach, from outside its execution
        environment (a presigned URL on a laptop), only payload objects under its own
        ``payloads/<aws:userid>/`` prefix (docs/security.md). GetCallerIdentity needs no
        permission.
        """
        if self._owner is None:
            self._owner = self.sts.get_caller_identity()["UserId"]
        return self._owner

    def payload_key(self, request_id: str, direction: str, session_id: str) -> str:
        return naming.payload_key(self.owner, session_id, request_id, direction)

    # --- session ------------------------------------------------------------------------

    def read_session(self, session_id: str) -> Session:
        self.session_reads += 1
        item = self.dynamodb.get_item(
            TableName=self.config.sessions_table,
            Key={naming.A_SESSION_ID: {"S": session_id}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return Session(status=None)
        status = _text(item, naming.A_STATUS)
        return Session(
            status=status,
            connection_id=_text(item, naming.A_CONNECTION_ID),
            expired=naming.ttl_expired(item.get(naming.A_TTL, {}).get("N"), time.time()),
            disconnected_at=(
                naming.iso_epoch(_text(item, naming.A_DISCONNECTED_AT))
                if status == naming.DISCONNECTED
                else None
            ),
        )

    # --- request item -------------------------------------------------------------------

    def put_request(self, request_id: str, session_id: str) -> None:
        """Record a PENDING request: the ``$default`` route accepts answers only for these.

        The item says whose request it is and nothing else: the event, the environment and
        the credentials travel in the message only, and the item is deleted once answered
        (:meth:`forget`), so nothing sensitive rests in a table others may read.
        """
        item: dict[str, Any] = {
            naming.A_REQUEST_ID: {"S": request_id},
            naming.A_SESSION_ID: {"S": session_id},
            naming.A_FUNCTION_NAME: {"S": self.config.function_name},
            naming.A_OWNER: {"S": self.owner},
            naming.A_STATUS: {"S": naming.REQUEST_PENDING},
            naming.A_TTL: {"N": str(int(time.time()) + limits.REQUEST_TTL_SECONDS)},
            naming.A_CREATED_AT: {"S": _iso_now()},
        }
        self.dynamodb.put_item(TableName=self.config.debugger_table, Item=item)

    def forget(self, request_id: str, refs: list[dict[str, Any]]) -> None:
        """Delete what an answered (or expired) request left: its item, and the payload
        objects ``refs`` name (its event's and result's, when they went through the bucket).

        Run after the answer went to the Runtime API, off the caller's path.
        """
        self.dynamodb.delete_item(
            TableName=self.config.debugger_table, Key={naming.A_REQUEST_ID: {"S": request_id}}
        )
        for ref in refs:
            self.s3.delete_object(Bucket=ref["bucket"], Key=ref["key"])

    def read_answer(self, request_id: str, session_id: str) -> Answer | None:
        """The answer to ``request_id``, or None while it is still pending."""
        self.reads += 1
        item = self.dynamodb.get_item(
            TableName=self.config.debugger_table,
            Key={naming.A_REQUEST_ID: {"S": request_id}},
            ConsistentRead=True,
        ).get("Item") or {}
        return self._answer(request_id, session_id, item)

    def expire(self, request_id: str, session_id: str) -> Answer | None:
        """Mark a still-pending request EXPIRED, so a late answer is refused by ``$default``.

        Returns the answer instead when one arrived in the meantime (the condition fails).
        """
        try:
            self.dynamodb.update_item(
                TableName=self.config.debugger_table,
                Key={naming.A_REQUEST_ID: {"S": request_id}},
                ConditionExpression="#status = :pending",
                UpdateExpression="SET #status = :expired",
                ExpressionAttributeNames={"#status": naming.A_STATUS},
                ExpressionAttributeValues={
                    ":pending": {"S": naming.REQUEST_PENDING},
                    ":expired": {"S": naming.REQUEST_EXPIRED},
                },
            )
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return self.read_answer(request_id, session_id)
        return None

    def _answer(self, request_id: str, session_id: str, item: dict[str, Any]) -> Answer | None:
        status = _text(item, naming.A_STATUS)
        if status == naming.REQUEST_FAILED:
            return Answer(error=json.loads(_text(item, naming.A_ERROR) or "{}"))
        if status != naming.REQUEST_RESPONDED:
            return None
        inline = _text(item, naming.A_RESPONSE)
        if inline is not None:
            return Answer(body=inline.encode())
        # $default stores an offloaded result's reference where the event's was.
        ref = json.loads(_text(item, naming.A_PAYLOAD_REF) or "null")
        return Answer(body=self.get_payload(request_id, session_id, ref), ref=ref)

    # --- payloads -----------------------------------------------------------------------

    def put_payload(
        self, request_id: str, direction: str, body: bytes, session_id: str
    ) -> dict[str, Any]:
        """Upload an event too large for a message and return its reference."""
        if len(body) > limits.MAX_PAYLOAD:
            raise PayloadError(
                f"{direction} of {len(body)} bytes is over the {limits.MAX_PAYLOAD} byte limit"
            )
        if not self.config.payload_bucket:
            raise PayloadError(
                f"{direction} of {len(body)} bytes needs the payload bucket, but "
                f"{naming.ENV_PAYLOAD_BUCKET} is not set"
            )
        key = self.payload_key(request_id, direction, session_id)
        self.s3.put_object(Bucket=self.config.payload_bucket, Key=key, Body=body)
        return {"bucket": self.config.payload_bucket, "key": key, "size": len(body)}

    def presign(self, method: str, key: str, seconds: int) -> str:
        """A URL that lets its holder GET or PUT one payload object for ``seconds``.

        Signed locally with the function's own credentials (no AWS call); S3 checks the
        signature, which covers the method and the key, and the signer's rights when the URL
        is used.
        """
        return self.s3.generate_presigned_url(
            f"{method}_object",
            Params={"Bucket": self.config.payload_bucket, "Key": key},
            ExpiresIn=seconds,
        )

    def result_upload(
        self, request_id: str, seconds: int, session_id: str
    ) -> dict[str, Any] | None:
        """Where the local tool may upload this request's result (None without a bucket)."""
        if not self.config.payload_bucket:
            return None
        key = self.payload_key(request_id, "response", session_id)
        return {"bucket": self.config.payload_bucket, "key": key, "url": self.presign("put", key, seconds)}

    def get_payload(self, request_id: str, session_id: str, ref: Any) -> bytes:
        """Download an offloaded response; only this request's own response object is read."""
        key = self.payload_key(request_id, "response", session_id)
        if not isinstance(ref, dict) or ref.get("bucket") != self.config.payload_bucket or ref.get("key") != key:
            raise PayloadError(f"response reference {ref!r} does not point to {key} in the payload bucket")
        found = self.s3.get_object(Bucket=ref["bucket"], Key=ref["key"])
        if found["ContentLength"] > limits.MAX_PAYLOAD:  # the PUT URL does not bound the size
            found["Body"].close()
            raise PayloadError(
                f"response of {found['ContentLength']} bytes is over the {limits.MAX_PAYLOAD} byte limit"
            )
        return found["Body"].read()

    # --- connection ---------------------------------------------------------------------

    def post(self, connection_id: str, data: bytes) -> bool:
        """Send a message to the local tool; False when the connection is gone (410)."""
        try:
            self.management.post_to_connection(ConnectionId=connection_id, Data=data)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "GoneException":
                log.info("connection %s is gone", connection_id)
                return False
            raise
        return True
