"""AWS calls as JSON, and the botocore hook that records or answers them (hermetic replay).

Every botocore call goes through ``BaseClient._make_api_call``. :func:`install` wraps that
one method (as tracing libraries such as OpenTelemetry and the X-Ray SDK do) so that a call
made on a thread that ``resolve()`` maps to a :class:`Tap` is handed to it; any other call
(plldb's own, another thread's) goes on untouched. On the first such call of a client,
handlers are registered on that client's own event emitter, the mechanism botocore's
Stubber builds on:

- ``before-parameter-build`` (last, so after boto3's DynamoDB resource turned Python values
  into attribute values): the call starts, with its low-level parameters;
- ``before-call`` (first): a replaying tap answers here, and nothing is signed or sent;
- ``after-call`` (first, before boto3 turns the answer back into Python values): the
  response, with its status (botocore raises the error class from it, as in the cloud);
- ``after-call-error``: a failure that never got a response (connection, timeout).

Per-call state rides in botocore's request context (one dict per call), so concurrent calls
never share it. A call made while another is in flight on the same thread (a credential
refresh during signing, S3's region redirect) is the SDK's own and is not recorded.

This module imports only the standard library, botocore and its sibling
:mod:`secrets` (relatively), because ``plldb events export`` copies it beside an exported
test, which must run where plldb is not installed.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import json
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import botocore.client
import botocore.exceptions
from botocore.awsrequest import AWSResponse
from botocore.response import StreamingBody

from . import secrets  # relative: the exported copy sits in its own package

TAG = "$plldb"
BODY_LIMIT = 1 << 20  # bytes of a request or response body kept; larger ones by size and hash
SECRET = "[secret not recorded]"
_CONTEXT_KEY = "plldb_call"
# Operations whose answer depends on their parameters: never answered by another call's.
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Query", "Scan", "BatchGet", "Receive",
                 "Select", "Search", "Lookup", "Filter", "Invoke", "Decrypt", "Generate", "Assume")

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
    """A request body (a file the caller opened) as bytes, read without consuming it."""
    try:
        start = stream.tell()
        data = stream.read()
        stream.seek(start)
    except (OSError, ValueError, AttributeError):
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


def call_key(call: dict[str, Any]) -> tuple[str, str, str]:
    """What matches a call to a recorded one: service, operation and parameters."""
    return call["service"], call["operation"], canonical(call["params"])


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def call_name(call: dict[str, Any]) -> str:
    """``s3:PutObject {"Bucket": "b", ...}`` (parameters cut at 200 characters)."""
    text = canonical(call["params"])
    return f"{call['service']}:{call['operation']} {text[:200]}{'…' if len(text) > 200 else ''}"


def is_read(operation: str) -> bool:
    return operation.startswith(READ_PREFIXES)


class UnanswerableCall(Exception):
    """A call a replay cannot answer from the record (the replay fails with this text)."""


class Player:
    """Answers calls from a record's calls: the same service, operation and parameters
    first (each recorded call once, in order; a repeat gets the last one's answer again). A
    write (any operation that is not a read, :data:`READ_PREFIXES`) whose parameters changed
    gets the answer of the first unused recorded call of its operation, and shows as
    changed; anything else is :class:`UnanswerableCall`, naming the nearest recorded call."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls
        self._used = [False] * len(calls)
        self._lock = threading.Lock()

    def answer(self, call: dict[str, Any]) -> dict[str, Any]:
        """The recorded call that answers ``call`` (normalized as in the record)."""
        key = call_key(call)
        with self._lock:
            same = [i for i, c in enumerate(self.calls) if call_key(c) == key]
            fresh = [i for i in same if not self._used[i]]
            if not same and not is_read(call["operation"]):
                fresh = [i for i, c in enumerate(self.calls) if not self._used[i]
                         and (c["service"], c["operation"]) == key[:2]]
            chosen = fresh[0] if fresh else same[-1] if same else None
            if chosen is None:
                raise UnanswerableCall(self.unrecorded(call))
            self._used[chosen] = True
            return self.calls[chosen]

    def unrecorded(self, call: dict[str, Any]) -> str:
        nearest = self.nearest(call)
        where = f"the nearest recorded call is {call_name(nearest)}" if nearest else "the record holds no AWS call"
        return f"{call_name(call)} was not recorded ({where}): replay with --live to call AWS"

    def nearest(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded call most like ``call``: same operation, then same service, then the
        most parameters in common."""
        def likeness(other: dict[str, Any]) -> tuple[int, int, float]:
            import difflib

            ratio = difflib.SequenceMatcher(None, canonical(other["params"]), canonical(call["params"])).ratio()
            return (other["service"] == call["service"],
                    other["operation"] == call["operation"], ratio)
        return max(self.calls, key=likeness, default=None)


# --- The hook ---------------------------------------------------------------------------------


class Tap(Protocol):
    """Where one invocation's calls go (:func:`install`)."""

    def begin(self, service: str, operation: str, params: dict[str, Any]) -> Any:
        """A call starts: returns what identifies it to the other methods."""

    def answer(self, entry: Any) -> tuple[int, dict[str, Any]] | None:
        """The status and parsed response to give instead of calling AWS, or None to call it."""

    def finish(self, entry: Any, status: int, parsed: dict[str, Any]) -> None:
        """The call got a response (``parsed`` may be changed: streams are replaced)."""

    def fail(self, entry: Any, exc: BaseException) -> None:
        """The call failed without a response."""


_local = threading.local()
_original: Callable[..., Any] | None = None
_resolve: Callable[[], Tap | None] = lambda: None  # noqa: E731 - replaced by install
_hooked: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()  # client -> operations
_install_lock = threading.Lock()


def install(resolve: Callable[[], Tap | None]) -> None:
    """Send every botocore call made where ``resolve()`` gives a tap to that tap (see the
    module's text); calls where it gives None go on as before."""
    global _original, _resolve
    with _install_lock:
        _resolve = resolve
        if _original is None:
            _original = botocore.client.BaseClient._make_api_call
            botocore.client.BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]


def uninstall() -> None:
    """Put botocore back as it was (clients keep inert handlers: they find no tap)."""
    global _original, _resolve
    with _install_lock:
        if _original is not None:
            botocore.client.BaseClient._make_api_call = _original  # type: ignore[method-assign]
        _original, _resolve = None, lambda: None


def _make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
    original = _original or botocore.client.BaseClient._make_api_call
    tap = None if getattr(_local, "busy", False) else _resolve()
    if tap is None:
        return original(client, operation_name, api_params)
    _hook(client, operation_name)
    _local.busy, _local.pending = True, tap
    try:
        return original(client, operation_name, api_params)
    finally:
        _local.busy, _local.pending = False, None


def _hook(client: Any, operation: str) -> None:
    """Register the handlers on ``client`` (once), and on its ``operation``'s own
    ``after-call`` event: handlers of a more specific event run first, and boto3's DynamoDB
    resource changes the answer in place on ``after-call.dynamodb``."""
    operations = _hooked.get(client)
    if operations is None:
        events = client.meta.events
        events.register_last("before-parameter-build", _on_params, unique_id="plldb-params")
        events.register_first("before-call", _on_call, unique_id="plldb-call")
        events.register_first("after-call-error", _on_error, unique_id="plldb-error")
        operations = _hooked.setdefault(client, set())
    if operation not in operations:
        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register_first(f"after-call.{service_id}.{operation}", _on_response,
                                          unique_id=f"plldb-response-{operation}")
        operations.add(operation)


def _on_params(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    tap = getattr(_local, "pending", None)
    if tap is None:
        return
    _local.pending = None  # a nested call on this thread is the SDK's own
    context[_CONTEXT_KEY] = (tap, tap.begin(model.service_model.service_name, model.name, params))


def _on_call(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
    held = context.get(_CONTEXT_KEY)
    if held is None:
        return None
    tap, entry = held
    answer = tap.answer(entry)
    if answer is None:
        return None
    status, parsed = answer
    return AWSResponse(params.get("url"), status, {}, None), parsed


def _on_response(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    held = context.get(_CONTEXT_KEY)
    if held is not None:
        held[0].finish(held[1], http_response.status_code, parsed)


def _on_error(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
    held = context.get(_CONTEXT_KEY)
    if held is not None:
        held[0].fail(held[1], exception)
