"""AWS calls' parameters and responses as JSON, fit to write down (hermetic replay).

botocore hands over Python values: bytes (blobs, bodies), datetimes, streams (an S3 object's
``Body``, a file given as ``Body``). :func:`encode` writes them as tagged JSON objects
(``{"$plldb": "bytes", "base64": ...}``) that :func:`decode` turns back, so a replay gives the
handler what botocore gave it. :func:`private` takes out what must never be written: secret
values (Secrets Manager, SSM SecureString, KMS plaintext, STS and other credentials) become
markers, always; the well-known secret fields of :mod:`secrets` are blanked unless the
capture keeps them; the ``--capture-redact`` paths apply.

Imports only the standard library, botocore and its sibling :mod:`secrets` (relatively):
``plldb events export`` copies it beside an exported test, which runs without plldb.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
from typing import Any

import botocore.exceptions
from botocore.response import StreamingBody

from . import secrets  # relative: the exported copy sits in its own package

TAG = "$plldb"
BODY_LIMIT = 1 << 20  # bytes of a request or response body kept; larger ones by size and hash
SECRET = "[secret not recorded]"


class UnanswerableCall(Exception):
    """A call a replay cannot answer from the record (the replay fails with this text)."""


# --- Values -----------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """``value`` (parameters or a parsed response) as JSON data: bytes, datetimes and
    streams become tagged objects (``{"$plldb": "bytes", ...}``) :func:`decode` turns back.
    A stream is read whole only up to :data:`BODY_LIMIT`; a seekable one is put back where
    it was, so the SDK still sends it."""
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return _bytes(bytes(value))
    if isinstance(value, datetime.datetime):
        return {TAG: "datetime", "iso": value.isoformat()}
    if hasattr(value, "read"):
        return _stream(value)
    return {TAG: "object", "type": type(value).__name__, "repr": repr(value)[:200]}


def _bytes(data: bytes) -> dict[str, Any]:
    if len(data) > BODY_LIMIT:
        return {TAG: "bytes", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return {TAG: "bytes", "base64": base64.b64encode(data).decode()}


def _stream(stream: Any) -> dict[str, Any]:
    """A request body (a file the caller opened) as bytes, read without consuming it: only a
    seekable one, and only up to :data:`BODY_LIMIT` (a larger one by its size alone, never
    read: an upload of gigabytes must not be read twice)."""
    try:
        if callable(getattr(stream, "seekable", None)) and not stream.seekable():
            return {TAG: "stream", "recorded": False}
        start = stream.tell()
        size = stream.seek(0, 2) - start
        stream.seek(start)
        if size > BODY_LIMIT:
            return {TAG: "bytes", "size": size, "sha256": None}
        data = stream.read()
        stream.seek(start)
    except (OSError, ValueError, AttributeError, TypeError):
        return {TAG: "stream", "recorded": False}
    return _bytes(data.encode() if isinstance(data, str) else data)


def decode(value: Any) -> Any:
    """The Python value :func:`encode` wrote down (bodies come back as fresh streams where
    botocore gives streams: see :func:`decode_response`)."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: decode(v) for k, v in value.items()}
    if kind == "datetime":
        return datetime.datetime.fromisoformat(value["iso"])
    if kind == "bytes" and "base64" in value:
        return base64.b64decode(value["base64"])
    if kind == "secret":
        return b"\0" * value["size"] if "size" in value else SECRET
    raise UnanswerableCall(f"a value that was not recorded ({_describe_tag(value)})")


def _describe_tag(value: dict[str, Any]) -> str:
    if value.get(TAG) == "bytes":
        return f"a body of {value['size']} bytes, more than the {BODY_LIMIT} kept"
    return f"a {value.get(TAG)} ({value.get('type', 'not readable')})"


def decode_response(value: dict[str, Any]) -> dict[str, Any]:
    """A recorded parsed response as botocore returns it: streaming bodies as streams."""
    parsed = decode(value)
    for name, field in value.items():
        if isinstance(field, dict) and field.get(TAG) == "body":
            data = decode(field["data"])
            parsed[name] = StreamingBody(io.BytesIO(data), len(data))
    return parsed


def snapshot_response(parsed: dict[str, Any]) -> dict[str, Any]:
    """``parsed`` encoded. A streaming body (S3 GetObject's ``Body``) is read, up to
    :data:`BODY_LIMIT`, and replaced in ``parsed`` by a fresh stream of the same bytes, so the
    handler still reads it; a larger one is left unread and marked not recorded."""
    encoded = {}
    for name, field in parsed.items():
        if isinstance(field, StreamingBody):
            size = _content_length(parsed, field)
            if size is not None and size > BODY_LIMIT:
                encoded[name] = {TAG: "body", "data": {TAG: "bytes", "size": size, "sha256": None}}
                continue
            data = field.read()
            parsed[name] = StreamingBody(io.BytesIO(data), len(data))
            encoded[name] = {TAG: "body", "data": _bytes(data)}
        elif hasattr(field, "read") or type(field).__name__ == "EventStream":
            encoded[name] = {TAG: "stream", "recorded": False, "type": type(field).__name__}
        else:
            encoded[name] = encode(field)
    return encoded


def _content_length(parsed: dict[str, Any], body: StreamingBody) -> int | None:
    size = parsed.get("ContentLength", getattr(body, "_content_length", None))
    try:
        return int(size) if size is not None else None
    except (TypeError, ValueError):
        return None


def encode_error(exc: BaseException) -> dict[str, Any]:
    """A failure without a response (no connection, a timeout): its class and text."""
    kwargs = getattr(exc, "kwargs", None)
    return {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "message": str(exc),
        "kwargs": {k: str(v) for k, v in kwargs.items()} if isinstance(kwargs, dict) else None,
    }


def raise_error(error: dict[str, Any]) -> None:
    """Raise the recorded failure again: botocore's own class when it is one of botocore's."""
    cls = getattr(botocore.exceptions, error["type"], None) if error["module"] == "botocore.exceptions" else None
    if isinstance(cls, type) and issubclass(cls, botocore.exceptions.BotoCoreError) and error.get("kwargs") is not None:
        try:
            exc = cls(**error["kwargs"])
        except (KeyError, TypeError):
            exc = None
        if exc is not None:
            raise exc
    raise RecordedFailure(f"{error['type']}: {error['message']}")


class RecordedFailure(Exception):
    """A recorded failure whose own class cannot be rebuilt here."""


# --- Calls ------------------------------------------------------------------------------------


def normal_params(params: Any, keep_secrets: bool, redact_paths: tuple[tuple[str, ...], ...] = ()) -> Any:
    """Parameters as written in a record, and as compared in a replay: encoded, with
    :func:`private` applied."""
    return private(encode(params), keep_secrets, redact_paths)


def private(value: Any, keep_secrets: bool, redact_paths: tuple[tuple[str, ...], ...] = ()) -> Any:
    """Encoded parameters or a response fit to write down: secret values
    (:data:`SECRET_FIELDS`, SSM SecureString values) replaced by markers, always; the
    well-known secret fields of :mod:`secrets` blanked unless ``keep_secrets``; the
    ``--capture-redact`` paths applied."""
    value = mark_secrets(value)
    if not keep_secrets:
        value = _redact_fields(value)
    for path in redact_paths:
        value = secrets.redact(value, path)
    return value


# Fields that hold a secret's value in the AWS APIs: Secrets Manager's values and random
# passwords, KMS plaintexts and data keys, STS/SSO/Cognito credentials, IAM's new access keys,
# Cognito user pool tokens, ECR's authorization token, RDS and Redshift master passwords.
SECRET_FIELDS = frozenset({
    "SecretString", "SecretBinary", "RandomPassword", "Plaintext", "PrivateKeyPlaintext",
    "SecretAccessKey", "SessionToken", "secretAccessKey", "sessionToken", "SecretKey",
    "AccessToken", "IdToken", "RefreshToken", "authorizationToken", "MasterUserPassword",
})
_ATTRIBUTE_TYPES = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "BOOL", "NULL"})


def mark_secrets(value: Any) -> Any:
    """``value`` (encoded) with every secret value replaced by a marker (:func:`_marker`)."""
    if isinstance(value, list):
        return [mark_secrets(v) for v in value]
    if not isinstance(value, dict) or TAG in value:
        return value
    secure = value.get("Type") == "SecureString"
    return {k: _marker(v) if k in SECRET_FIELDS or (secure and k == "Value") else mark_secrets(v)
            for k, v in value.items()}


def _marker(value: Any) -> Any:
    """A secret's place: bytes keep their length (a data key still fits its cipher), a JSON
    object keeps its keys (``json.loads`` of a secret still works), anything else a text."""
    if isinstance(value, dict) and value.get(TAG) == "bytes":
        size = value.get("size") or len(base64.b64decode(value.get("base64", "")))
        return {TAG: "secret", "size": size}
    if isinstance(value, str):
        try:
            shape = json.loads(value)
        except ValueError:
            return SECRET
        if isinstance(shape, dict):
            return json.dumps({k: SECRET for k in shape})
    return SECRET


def _redact_fields(value: Any) -> Any:
    """:func:`secrets.redact_secrets` for AWS data: a DynamoDB attribute value keeps its type
    (``{"S": "[redacted]"}``), so boto3 still reads the item."""
    if isinstance(value, list):
        return [_redact_fields(v) for v in value]
    if not isinstance(value, dict) or TAG in value:
        return value
    return {k: _blank(v) if secrets.is_secret(k) else _redact_fields(v) for k, v in value.items()}


def _blank(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _ATTRIBUTE_TYPES:
        kind = next(iter(value))
        return {kind: secrets.REDACTED} if kind == "S" else {"NULL": True}
    return secrets.redact_secrets({"secret": value})["secret"]
