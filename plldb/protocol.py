"""The shared protocol: names, states, limits and messages that cross a boundary.

Standard library only: this module is bundled with :mod:`plldb.naming` and :mod:`plldb.limits`
into every helper Lambda zip and into the runtime layer, so the local tool, the helper Lambdas and the shim
agree on one definition. See docs/protocol.md for the prose and an example of each message.

Every message received from another party goes through :func:`parse_client_message` or
:func:`parse_server_message`; an invalid one raises :class:`ProtocolError` with a reason and
must change nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from plldb.limits import (
    FRAME_SIZE,
    MAX_PAYLOAD,
    MAX_TIMEOUT,
    MESSAGE_LIMIT,
    POST_SIZE,
    PRESIGNED_URL_LIMIT,
)
from plldb.naming import PAYLOAD_PREFIX

PROTOCOL_VERSION = 1

# --- Messages -----------------------------------------------------------------------------
# Client -> server messages carry "action" (API Gateway routes on $request.body.action);
# server -> client messages carry "type".

ACTION_RESPONSE = "response"
ACTION_ERROR = "error"
ACTION_DETACH = "detach"
ACTION_PING = "ping"
CLIENT_ACTIONS = (ACTION_RESPONSE, ACTION_ERROR, ACTION_DETACH, ACTION_PING)

TYPE_INVOCATION = "invocation"
TYPE_PROGRESS = "progress"
TYPE_LOG = "log"
TYPE_PONG = "pong"
TYPE_REJECTED = "rejected"
TYPE_DETACHED = "detached"
TYPE_MIRROR = "mirror"  # a copy of an invocation the cloud answered (attach --mirror)
SERVER_TYPES = (
    TYPE_INVOCATION, TYPE_PROGRESS, TYPE_LOG, TYPE_PONG, TYPE_REJECTED, TYPE_DETACHED, TYPE_MIRROR
)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ProtocolError(ValueError):
    """A message or value that does not follow the protocol; the text is the reason."""


def is_session_id(value: Any) -> bool:
    """Session ids are UUIDs: anything else is refused before touching a table."""
    return isinstance(value, str) and bool(_UUID.match(value))


def is_request_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_REQUEST_ID.match(value))


def encode(message: dict[str, Any]) -> str:
    """Compact JSON, the wire form of every message."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def fragments(text: str, limit: int = FRAME_SIZE) -> list[str]:
    """Split a message into pieces of at most ``limit`` UTF-8 bytes, never inside a character.

    API Gateway refuses frames over 32 KB, so a longer message is sent as a fragmented
    WebSocket message (``websocket.send(iterable)``) of frames under that quota.
    """
    data = text.encode()
    pieces: list[str] = []
    start = 0
    while start < len(data):
        end = min(len(data), start + limit)
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # continuation byte
            end -= 1
        pieces.append(data[start:end].decode())
        start = end
    return pieces or [""]


# --- Validation ---------------------------------------------------------------------------

_PAYLOAD_REF_FIELDS = {"bucket": str, "key": str, "size": int}
_UPLOAD_FIELDS = {"bucket": str, "key": str, "url": str}
_ERROR_FIELDS = {"errorMessage": str, "errorType": str}

# field -> (type or tuple of types, required)
_CLIENT_SCHEMAS: dict[str, dict[str, tuple[Any, bool]]] = {
    ACTION_RESPONSE: {
        "request_id": (str, True),
        "result": (str, False),
        "result_ref": (dict, False),
    },
    ACTION_ERROR: {"request_id": (str, True), "error": (dict, True)},
    ACTION_DETACH: {},
    ACTION_PING: {},
}

_SERVER_SCHEMAS: dict[str, dict[str, tuple[Any, bool]]] = {
    TYPE_INVOCATION: {
        "request_id": (str, True),
        "session_id": (str, True),
        "function_name": (str, True),
        "invoked_function_arn": (str, True),
        "deadline_ms": (int, True),
        "event": (str, False),
        "event_ref": (dict, False),
        "result_upload": (dict, False),
        "environment": (dict, True),
        "trace_id": ((str, type(None)), False),
        "client_context": ((str, type(None)), False),
        "cognito_identity": ((str, type(None)), False),
        "tenant_id": ((str, type(None)), False),
    },
    TYPE_PROGRESS: {
        "phase": (str, True),
        "message": (str, True),
        "function": ((str, type(None)), False),
        "status": (str, False),
        "done": (bool, False),
        "summary": (dict, False),
    },
    TYPE_LOG: {"level": (str, True), "message": (str, True)},
    TYPE_PONG: {},
    TYPE_REJECTED: {"reason": (str, True)},
    TYPE_DETACHED: {"restored": (list, True), "failed": (list, False)},
    # Either a whole copy (the fields of _MIRROR_COPY_FIELDS, all required then) or, when
    # that would not fit one post, only the names and ``too_large`` (checked in _check_mirror).
    TYPE_MIRROR: {
        "request_id": (str, True),
        "session_id": (str, True),
        "function_name": (str, True),
        "too_large": (int, False),
        "invoked_function_arn": (str, False),
        "deadline_ms": (int, False),
        "remaining_ms": (int, False),
        "environment": (dict, False),
        "trace_id": ((str, type(None)), False),
        "client_context": ((str, type(None)), False),
        "cognito_identity": ((str, type(None)), False),
        "tenant_id": ((str, type(None)), False),
        "event": (str, False),
        "cloud": (dict, False),
    },
}
_MIRROR_COPY_FIELDS = (
    "invoked_function_arn", "deadline_ms", "remaining_ms", "environment", "event", "cloud"
)
_MIRROR_OPTIONAL_FIELDS = ("trace_id", "client_context", "cognito_identity", "tenant_id")


def _check_fields(message: dict[str, Any], schema: dict[str, tuple[Any, bool]], kind: str) -> None:
    for name, (expected, required) in schema.items():
        if name not in message:
            if required:
                raise ProtocolError(f"{kind} message without {name!r}")
            continue
        value = message[name]
        if isinstance(value, bool) and expected is int:
            raise ProtocolError(f"{kind} field {name!r} must be {expected.__name__}")
        if not isinstance(value, expected):
            raise ProtocolError(f"{kind} field {name!r} has the wrong type")


def _check_object(ref: Any, name: str, fields: dict[str, type]) -> None:
    """A payload object's description: the fields' types, a key under ``payloads/``."""
    if not isinstance(ref, dict):
        raise ProtocolError(f"{name} must be an object")
    for field_name, expected in fields.items():
        value = ref.get(field_name)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ProtocolError(f"{name} needs {field_name!r}")
    if not ref["key"].startswith(PAYLOAD_PREFIX):
        raise ProtocolError(f"{name} key must be under {PAYLOAD_PREFIX}")


def _check_payload_ref(ref: Any, name: str) -> None:
    _check_object(ref, name, _PAYLOAD_REF_FIELDS)
    if not 0 <= ref["size"] <= MAX_PAYLOAD:
        raise ProtocolError(f"{name} size is over the {MAX_PAYLOAD} byte limit")


def _check_presigned(ref: dict[str, Any], name: str) -> None:
    """``ref["url"]`` is an HTTP(S) URL of ``ref["key"]`` (a presigned S3 URL).

    The local tool fetches or uploads with it, so nothing but HTTP(S) is accepted (no
    ``file:`` URL), and it must name the object the message says it names.
    """
    url = ref.get("url")
    if not isinstance(url, str) or len(url) > PRESIGNED_URL_LIMIT:
        raise ProtocolError(f"{name} needs a 'url' of at most {PRESIGNED_URL_LIMIT} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ProtocolError(f"{name} url must be an http(s) URL")
    if not unquote(parts.path).endswith("/" + ref["key"]):
        raise ProtocolError(f"{name} url does not point at its key {ref['key']}")


def _load(text: Any) -> dict[str, Any]:
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError("message is not UTF-8") from exc
    if not isinstance(text, str):
        raise ProtocolError("message is not text")
    if len(text.encode()) > MESSAGE_LIMIT:
        raise ProtocolError(f"message is over the {MESSAGE_LIMIT} byte limit")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("message is not valid JSON") from exc
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message


def parse_client_message(text: Any) -> dict[str, Any]:
    """Validate a message sent by the local tool (received by the ``$default`` route)."""
    message = _load(text)
    action = message.get("action")
    if not isinstance(action, str) or action not in _CLIENT_SCHEMAS:
        raise ProtocolError(f"unknown action {action!r}")
    _check_fields(message, _CLIENT_SCHEMAS[action], f"{action!r}")
    if "request_id" in message and not is_request_id(message["request_id"]):
        raise ProtocolError("malformed request_id")
    if action == ACTION_RESPONSE:
        if ("result" in message) == ("result_ref" in message):
            raise ProtocolError("'response' needs exactly one of 'result' and 'result_ref'")
        if "result_ref" in message:
            _check_payload_ref(message["result_ref"], "result_ref")
    if action == ACTION_ERROR:
        _check_fields(message["error"], {k: (v, True) for k, v in _ERROR_FIELDS.items()}, "error")
    return message


def parse_server_message(text: Any) -> dict[str, Any]:
    """Validate a message sent to the local tool (by the shim or the helper Lambdas)."""
    message = _load(text)
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in _SERVER_SCHEMAS:
        raise ProtocolError(f"unknown message type {kind!r}")
    _check_fields(message, _SERVER_SCHEMAS[kind], f"{kind!r}")
    if kind == TYPE_INVOCATION:
        if not is_request_id(message["request_id"]):
            raise ProtocolError("malformed request_id")
        if ("event" in message) == ("event_ref" in message):
            raise ProtocolError("'invocation' needs exactly one of 'event' and 'event_ref'")
        if "event_ref" in message:
            _check_payload_ref(message["event_ref"], "event_ref")
            _check_presigned(message["event_ref"], "event_ref")
        if "result_upload" in message:
            _check_object(message["result_upload"], "result_upload", _UPLOAD_FIELDS)
            _check_presigned(message["result_upload"], "result_upload")
    if kind == TYPE_MIRROR:
        _check_mirror(message)
    return message


def _check_mirror(message: dict[str, Any]) -> None:
    """A ``mirror`` is a whole copy (event, context fields, the cloud's result), or says only
    that the copy was too large to post (``too_large``, its size in bytes), never a mix."""
    if not is_request_id(message["request_id"]):
        raise ProtocolError("malformed request_id")
    if "too_large" in message:
        extra = [name for name in (*_MIRROR_COPY_FIELDS, *_MIRROR_OPTIONAL_FIELDS) if name in message]
        if extra:
            raise ProtocolError(f"'mirror' with 'too_large' carries no {', '.join(map(repr, extra))}")
        if message["too_large"] < 0:
            raise ProtocolError("'mirror' field 'too_large' must be a size in bytes")
        return
    for name in _MIRROR_COPY_FIELDS:
        if name not in message:
            raise ProtocolError(f"'mirror' message without {name!r} (nor 'too_large')")
    if not 0 <= message["remaining_ms"] <= MAX_TIMEOUT * 1000:
        raise ProtocolError(f"'mirror' field 'remaining_ms' must be 0 to {MAX_TIMEOUT * 1000}")
    environment = message["environment"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in environment.items()):
        raise ProtocolError("'mirror' field 'environment' must map names to text")
    cloud = message["cloud"]
    if len(cloud) != 1 or not ("response" in cloud or "error" in cloud):
        raise ProtocolError("'mirror' field 'cloud' needs exactly one of 'response' and 'error'")
    if "response" in cloud and not isinstance(cloud["response"], str):
        raise ProtocolError("'mirror' field 'cloud.response' must be the response body as text")
    if "error" in cloud:
        error = cloud["error"]
        if not isinstance(error, dict):
            raise ProtocolError("'mirror' field 'cloud.error' must be an object")
        _check_fields(error, {k: (v, True) for k, v in _ERROR_FIELDS.items()}, "'mirror' cloud.error")


# --- Message builders ---------------------------------------------------------------------


def response_message(request_id: str, result: str | None = None, result_ref: dict | None = None) -> dict:
    message: dict[str, Any] = {"action": ACTION_RESPONSE, "request_id": request_id}
    if result_ref is not None:
        message["result_ref"] = result_ref
    else:
        message["result"] = result if result is not None else "null"
    return message


def error_message(request_id: str, error: dict[str, Any]) -> dict:
    return {"action": ACTION_ERROR, "request_id": request_id, "error": error}


def progress_message(
    phase: str,
    message: str,
    function: str | None = None,
    status: str = "ok",
    done: bool = False,
    summary: dict | None = None,
) -> dict:
    body: dict[str, Any] = {
        "type": TYPE_PROGRESS,
        "phase": phase,
        "message": message,
        "function": function,
        "status": status,
        "done": done,
    }
    if summary is not None:
        body["summary"] = summary
    return body


def rejected_message(reason: str) -> dict:
    return {"type": TYPE_REJECTED, "reason": reason}


def mirror_message(
    invocation: dict[str, Any],
    remaining_ms: int,
    response: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict:
    """The copy of an invocation the cloud answered (``attach --mirror``), to post to the
    session: ``invocation`` holds the fields an ``invocation`` message has (an inline
    ``event``), ``remaining_ms`` how long the invocation had when it started, and the cloud's
    outcome is ``response`` (the body as text) or ``error`` (the runtime's error object).
    When it would not fit one post (``POST_SIZE``), the ``too_large`` form instead
    (:func:`mirror_too_large`)."""
    if (response is None) == (error is None):
        raise ValueError("a mirror carries exactly one of response and error")
    copied = ("request_id", "session_id", "function_name", "invoked_function_arn", "deadline_ms",
              "environment", "event")
    message: dict[str, Any] = {"type": TYPE_MIRROR, **{name: invocation[name] for name in copied}}
    message["remaining_ms"] = remaining_ms
    message.update({name: invocation.get(name) for name in _MIRROR_OPTIONAL_FIELDS})
    message["cloud"] = {"response": response} if response is not None else {"error": error}
    size = len(encode(message).encode())
    if size > POST_SIZE:
        return mirror_too_large(invocation["request_id"], invocation["session_id"],
                                invocation["function_name"], size)
    return message


def mirror_too_large(request_id: str, session_id: str, function_name: str, size: int) -> dict:
    """What is posted instead of a mirror of ``size`` bytes, over what one post carries."""
    return {"type": TYPE_MIRROR, "request_id": request_id, "session_id": session_id,
            "function_name": function_name, "too_large": size}
