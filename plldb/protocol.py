"""The shared protocol: names, states, limits and messages that cross a boundary.

Standard library only: this module is bundled as ``plldb/protocol.py`` into every helper
Lambda zip and into the runtime layer, so the local tool, the helper Lambdas and the shim
agree on one definition. See docs/protocol.md for the prose and an example of each message.

Every message received from another party goes through :func:`parse_client_message` or
:func:`parse_server_message`; an invalid one raises :class:`ProtocolError` with a reason and
must change nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

PROTOCOL_VERSION = 1

# --- Helper stack -----------------------------------------------------------------------

HELPER_STACK_NAME = "plldb"
SESSIONS_TABLE = "PLLDBSessions"
DEBUGGER_TABLE = "PLLDBDebugger"
STACK_NAME_INDEX = "StackNameIndex"
CONNECTION_ID_INDEX = "ConnectionIdIndex"
SESSION_ID_INDEX = "SessionIdIndex"
SHIM_POLICY_NAME = "PLLDBShimAccess"
LAYER_NAME = "plldb-runtime-shim"
LAYER_DIR = "plldb-shim"
WRAPPER_PATH = f"/opt/{LAYER_DIR}/wrapper"
PAYLOAD_PREFIX = "payloads/"

# --- Claims (docs/security.md, "What may be debugged") ----------------------------------
# The developer tags each function to debug, with its own credentials, before connecting;
# the manager instruments only functions whose tag matches the session's authenticated
# creator. The value binds the claim to one identity and one session.
CLAIM_TAG = "plldb:claim"


def claim_value(caller_arn: str, session_id: str) -> str:
    """The ``plldb:claim`` tag value proving that ``caller_arn`` claimed a function."""
    return hashlib.sha256(f"{caller_arn}\n{session_id}".encode()).hexdigest()[:32]


# --- Who is calling (docs/security.md, "Who is calling") ---------------------------------
# plldb attach signs an STS GetCallerIdentity request with its own credentials, the session
# id among the signed headers, and sends the signed headers with the WebSocket upgrade; the
# authorizer replays it to its own STS endpoint and learns the caller's ARN from STS.
IDENTITY_HEADER = "X-PLLDB-Identity"
IDENTITY_SESSION_HEADER = "X-PLLDB-Session"
IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
IDENTITY_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
IDENTITY_MAX_AGE_SECONDS = 300  # a signed proof older than this is refused
IDENTITY_PROOF_LIMIT = 6 * 1024  # base64 text; session tokens make most of it

# $connect query parameters (besides sessionId)
Q_STACK_NAME = "stackName"
Q_FUNCTIONS = "functions"  # comma-separated --function globs
Q_TIMEOUT = "timeout"
Q_FORCE = "force"  # "1": close another identity's live session of the stack first
Q_NAMES = "names"  # comma-separated exact function names: a by-name session, no stack

# A by-name session (Terraform, Pulumi, console: no CloudFormation stack) is keyed in
# StackName by this prefix and a digest of its sorted names. The colon cannot occur in a
# CloudFormation stack name, so the key never collides with a stack's, and one set of
# functions has one live session, as one stack does.
BY_NAME_PREFIX = "functions:"
FUNCTION_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # Lambda's function names


# --- PLLDBSessions items ------------------------------------------------------------------
# Two kinds of item share the table: sessions (SessionId = the uuid secret) and
# instrumentation records (SessionId = "FUNCTION#<function name>"), which say which session
# instrumented which function and role, exist for as long as it is instrumented and carry no
# TTL. They hold no configuration: restoring reads only the function itself.

A_SESSION_ID = "SessionId"
A_KIND = "Kind"
A_STACK_NAME = "StackName"
A_STATUS = "Status"
A_TTL = "TTL"
A_CONNECTION_ID = "ConnectionId"
A_CREATED_AT = "CreatedAt"
A_CREATED_BY = "CreatedBy"
A_FUNCTIONS = "Functions"
A_NAMES = "Names"  # a by-name session's exact function names (its targets)
A_TIMEOUT = "Timeout"
A_DISCONNECTED_AT = "DisconnectedAt"

KIND_SESSION = "session"
KIND_INSTRUMENTATION = "instrumentation"
FUNCTION_KEY_PREFIX = "FUNCTION#"

A_FUNCTION_NAME = "FunctionName"
A_FUNCTION_ARN = "FunctionArn"
A_ROLE_NAME = "RoleName"
A_GRANT_ADDED = "GrantAdded"
A_INSTRUMENTED_BY = "InstrumentedBy"  # session id that instrumented the function

# Session states
PENDING = "PENDING"
ACTIVE = "ACTIVE"
DISCONNECTED = "DISCONNECTED"
CLOSED = "CLOSED"
SESSION_STATES = (PENDING, ACTIVE, DISCONNECTED, CLOSED)

# Instrumentation record states
INSTRUMENTING = "INSTRUMENTING"
INSTRUMENTED = "INSTRUMENTED"

# --- PLLDBDebugger items ------------------------------------------------------------------

A_REQUEST_ID = "RequestId"
A_REQUEST = "Request"
A_ENVIRONMENT = "Environment"
A_RESPONSE = "Response"
A_ERROR = "Error"
A_PAYLOAD_REF = "PayloadRef"

# Request states
REQUEST_PENDING = "PENDING"
REQUEST_RESPONDED = "RESPONDED"
REQUEST_FAILED = "FAILED"
REQUEST_EXPIRED = "EXPIRED"  # the shim gave up at the deadline; a late answer is refused

# errorType of the errors the shim itself answers an invocation with
ERROR_NO_RESPONSE = "PLLDB.NoDebuggerResponse"  # no answer before the function's deadline
ERROR_SHIM = "PLLDB.ShimError"  # the debug path failed (AWS call, payload too large, ...)

# --- Environment variables ----------------------------------------------------------------
# Set on an instrumented function by the manager, read by the shim.
ENV_EXEC_WRAPPER = "AWS_LAMBDA_EXEC_WRAPPER"
ENV_SESSION_ID = "DEBUGGER_SESSION_ID"
ENV_CONNECTION_ID = "DEBUGGER_CONNECTION_ID"
ENV_SESSIONS_TABLE = "PLLDB_SESSIONS_TABLE"
ENV_DEBUGGER_TABLE = "PLLDB_DEBUGGER_TABLE"
ENV_MANAGEMENT_URL = "PLLDB_MANAGEMENT_URL"
ENV_PAYLOAD_BUCKET = "PLLDB_PAYLOAD_BUCKET"
ENV_ORIGINAL_WRAPPER = "PLLDB_ORIGINAL_EXEC_WRAPPER"
# The function's own timeout, put back on restore (only a principal allowed to update the
# function can change it; restore applies it only when it is 1..MAX_TIMEOUT seconds).
ENV_ORIGINAL_TIMEOUT = "PLLDB_ORIGINAL_TIMEOUT"
# The helper stack's grace period: also how long the shim waits for a client that is away.
ENV_GRACE_SECONDS = "PLLDB_GRACE_SECONDS"
SHIM_ENV_VARS = (
    ENV_SESSION_ID,
    ENV_CONNECTION_ID,
    ENV_SESSIONS_TABLE,
    ENV_DEBUGGER_TABLE,
    ENV_MANAGEMENT_URL,
    ENV_PAYLOAD_BUCKET,
    ENV_ORIGINAL_WRAPPER,
    ENV_ORIGINAL_TIMEOUT,
    ENV_GRACE_SECONDS,
)

# Set on the helper Lambdas by the template.
ENV_MANAGER_FUNCTION = "PLLDB_MANAGER_FUNCTION"
ENV_LAYER_ARN = "PLLDB_LAYER_ARN"
ENV_DEFAULT_TIMEOUT = "PLLDB_DEFAULT_TIMEOUT"
ENV_CONNECTIONS_ARN = "PLLDB_CONNECTIONS_ARN"  # execute-api ARN pattern for @connections

# Outputs of the helper stack, read by the CLI (and the local cloud that imitates it).
OUTPUT_WEBSOCKET_URL = "WebSocketUrl"
OUTPUT_MANAGEMENT_URL = "ManagementUrl"
OUTPUT_SESSIONS_TABLE = "SessionsTableName"
OUTPUT_DEBUGGER_TABLE = "DebuggerTableName"
OUTPUT_DEBUGGER_ROLE = "DebuggerRoleArn"
OUTPUT_MANAGER_ROLE = "ManagerRoleArn"
OUTPUT_MANAGER_FUNCTION = "ManagerFunctionName"
OUTPUT_LAYER_ARN = "LayerVersionArn"
OUTPUT_PAYLOAD_BUCKET = "PayloadBucket"
OUTPUT_VERSION = "HelperStackVersion"

# Never written to a table or a bucket: they reach the local tool over the connection only.
SECRET_ENV_VARS = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
)

# --- Limits (AWS) -------------------------------------------------------------------------
# Each is sourced in docs/aws-limits.md. The quotas (``*_LIMIT``) are what AWS refuses above;
# what plldb sends stays below them by a margin (``*_SIZE``), which also covers AWS's "KB"
# meaning 1,000 rather than 1,024 bytes.

FRAME_LIMIT = 32 * 1024  # API Gateway WebSocket frame size quota
MESSAGE_LIMIT = 128 * 1024  # API Gateway WebSocket message payload size quota
FRAME_SIZE = 30 * 1024  # frames plldb sends
MESSAGE_SIZE = 120 * 1024  # messages the local tool sends
# Messages posted to a connection (@connections): the 32 KB frame quota applies to them too.
POST_SIZE = 30 * 1024
INLINE_PAYLOAD_LIMIT = 96 * 1024  # a result above this travels through the bucket
# A presigned S3 URL: mostly the signer's session token (about 1-2 KB for a function's role).
PRESIGNED_URL_LIMIT = 8 * 1024
# How long a payload URL outlives the invocation's deadline: a transfer that starts just
# before it may finish, and small clock differences between the function and S3 are covered.
PAYLOAD_URL_MARGIN_SECONDS = 60
ITEM_LIMIT = 400 * 1024
MAX_PAYLOAD = 6 * 1024 * 1024
ENV_LIMIT = 4 * 1024
MAX_LAYERS = 5
MAX_TIMEOUT = 900
DEFAULT_DEBUG_TIMEOUT = 900
CONNECT_WINDOW_SECONDS = 300  # a PENDING session must be connected within this
SESSION_TTL_SECONDS = 24 * 3600
REQUEST_TTL_SECONDS = 3600
DEFAULT_GRACE_SECONDS = 120
IDLE_TIMEOUT_SECONDS = 600
CONNECTION_LIFETIME_SECONDS = 2 * 3600

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
SERVER_TYPES = (TYPE_INVOCATION, TYPE_PROGRESS, TYPE_LOG, TYPE_PONG, TYPE_REJECTED, TYPE_DETACHED)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class ProtocolError(ValueError):
    """A message or value that does not follow the protocol; the text is the reason."""


def ttl_expired(ttl: Any, now: float) -> bool:
    """Whether an item's TTL (epoch seconds, as DynamoDB stores it) has passed.

    DynamoDB deletes expired items lazily, up to days later, and they still show in reads:
    every reader treats an item whose TTL has passed as gone. No TTL never expires.
    """
    try:
        return ttl is not None and int(ttl) <= now
    except (TypeError, ValueError):
        return False


def iso_epoch(text: Any) -> float | None:
    """Epoch seconds of a ``YYYY-MM-DDTHH:MM:SSZ`` timestamp as the helper stack writes them."""
    try:
        parsed = datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc).timestamp()


def by_name_key(names: list[str] | tuple[str, ...]) -> str:
    """The StackName key of a by-name session: the same for the same set of names."""
    digest = hashlib.sha256("\n".join(sorted(set(names))).encode()).hexdigest()
    return f"{BY_NAME_PREFIX}{digest[:12]}"


def is_session_id(value: Any) -> bool:
    """Session ids are UUIDs: anything else is refused before touching a table."""
    return isinstance(value, str) and bool(_UUID.match(value))


def is_request_id(value: Any) -> bool:
    return isinstance(value, str) and bool(_REQUEST_ID.match(value))


def function_key(function_name: str) -> str:
    """The PLLDBSessions key of a function's instrumentation record."""
    return f"{FUNCTION_KEY_PREFIX}{function_name}"


def payload_key(session_id: str, request_id: str, direction: str) -> str:
    """Bucket key of an offloaded payload; ``direction`` is 'event' or 'response'."""
    return f"{PAYLOAD_PREFIX}{session_id}/{request_id}/{direction}.json"


def without_secrets(environment: dict[str, str]) -> dict[str, str]:
    """The environment minus credentials, as stored in PLLDBDebugger."""
    return {k: v for k, v in environment.items() if k not in SECRET_ENV_VARS}


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
}


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
    return message


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
