"""The names both sides agree on: the helper stack's resources, table items, states,
environment variables and outputs, and the keys built from them.

Standard library only: bundled with :mod:`plldb.protocol` and :mod:`plldb.limits` into every
helper Lambda zip and into the runtime layer, so the local tool, the helper Lambdas and the
shim agree on one definition. docs/protocol.md describes the tables and states.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Any

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


# A session of a shared stage (``attach --route``/``--mirror``) claims with a key of its own,
# so that several developers' claims on one function never overwrite each other, and marks
# the function shared. The manager may change a function only while it carries
# ``plldb:claim`` (a whole-stack session) or ``plldb:shared`` (a shared stage).
SHARED_TAG = "plldb:shared"
SHARED_TAG_VALUE = "1"
ROUTE_TAG_PREFIX = "plldb:route:"


def route_tag(session_id: str) -> str:
    """The tag key of a routed session's claim (its value is :func:`claim_value`)."""
    return f"{ROUTE_TAG_PREFIX}{session_id}"


# --- Who is calling (docs/security.md, "Who is calling") ---------------------------------
# plldb attach signs an STS GetCallerIdentity request with its own credentials, the session
# id among the signed headers, and sends the signed headers with the WebSocket upgrade; the
# authorizer replays it to its own STS endpoint and learns the caller's ARN from STS.
IDENTITY_HEADER = "X-PLLDB-Identity"
IDENTITY_SESSION_HEADER = "X-PLLDB-Session"
IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
IDENTITY_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
IDENTITY_AUDIENCE_HEADER = "X-PLLDB-Audience"  # signed: the helper stack's management URL
IDENTITY_NONCE_HEADER = "X-PLLDB-Nonce"  # signed: two proofs made in one second still differ
IDENTITY_MAX_AGE_SECONDS = 300  # a signed proof older than this is refused
IDENTITY_MAX_FUTURE_SECONDS = 30  # ... and one dated further ahead (clock skew)
IDENTITY_PROOF_LIMIT = 6 * 1024  # base64 text; session tokens make most of it
# A proof is used once: the authorizer records its signature's digest under this key prefix
# (an item of kind "proof", with a TTL past the proof's validity) in one conditional write.
PROOF_KEY_PREFIX = "PROOF#"
# botocore names the sessions of a role_arn profile itself, anew in every process; the owner
# of a session drops such a name, so that a restarted plldb is still its session's owner.
_GENERATED_SESSION_NAME = re.compile(r"^botocore-session-\d+$")


def nonce_digest(nonce: str) -> str:
    """What the session item keeps of a ``$connect``'s one-time instrument nonce: the table
    is readable by the debugger role, the nonce itself travels in the authorizer's context
    (to ``$connect``, then the manager) only."""
    return hashlib.sha256(nonce.encode()).hexdigest()


def sts_url(region: str, dns_suffix: str) -> str:
    """The regional STS endpoint a proof is signed for and replayed to (never the global
    one: since 2025 the SDKs default to regional endpoints, and a signature covers the host)."""
    return f"https://sts.{region}.{dns_suffix}"


def session_owner(caller_arn: str) -> str:
    """Who owns a session: the caller's ARN as STS gives it, except that an assumed role's
    session name is dropped when botocore generated it (the role's ARN then), as
    aws-iam-authenticator canonicalises assumed roles. A name the user set (SSO, a profile's
    role_session_name) stays part of the owner."""
    parts = caller_arn.split(":", 5)
    resource = parts[5].split("/") if len(parts) == 6 and parts[2] == "sts" else []
    if len(resource) != 3 or resource[0] != "assumed-role":
        return caller_arn
    _, role, name = resource
    if not _GENERATED_SESSION_NAME.match(name):
        return caller_arn
    return f"arn:{parts[1]}:iam::{parts[4]}:role/{role}"

# $connect query parameters (besides sessionId)
Q_STACK_NAME = "stackName"
Q_FUNCTIONS = "functions"  # comma-separated --function globs
Q_TIMEOUT = "timeout"
Q_FORCE = "force"  # "1": close another identity's live session of the stack first
Q_NAMES = "names"  # comma-separated exact function names: a by-name session, no stack
Q_ROUTES = "routes"  # JSON list of route expressions (plldb/routing.py): a shared stage
Q_MIRROR = "mirror"  # "1": a copy of each matching invocation, answered by the cloud

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
A_INSTRUMENT_NONCE = "InstrumentNonce"  # sha256 of the one-time nonce of the latest $connect
A_PROOF_AT = "ProofAt"  # epoch seconds of the newest proof the session was opened or resumed with

KIND_SESSION = "session"
KIND_INSTRUMENTATION = "instrumentation"
KIND_PROOF = "proof"  # a used identity proof (single use)
KIND_STACK_LOCK = "stack"  # which session holds a stack (or a set of names): one per key
STACK_LOCK_PREFIX = "STACK#"
A_HOLDER = "Holder"  # the session id a stack lock names
# A shared stage: the lock item has no Holder but Mode "shared" and the route table, a map
# from session id to its entry (the session's routes, when it attached, by whom, mirror).
# The shim reads this one item to decide where an invocation goes.
A_MODE = "Mode"
MODE_SHARED = "shared"
A_ROUTES = "Routes"  # in the lock item: the table; in a session item: its route list
R_ROUTES = "Routes"  # entry fields
R_AT = "At"  # epoch milliseconds of the attach: the earliest matching session wins
R_BY = "By"
R_MIRROR = "Mirror"
A_MIRROR = "Mirror"  # in a session item: a mirror session (BOOL)
MAX_SHARED_SESSIONS = 20  # live sessions on one shared stage
FUNCTION_KEY_PREFIX = "FUNCTION#"


def stack_lock_key(stack_name: str) -> str:
    """The lock item's key; also the owner key of a shared stage's instrumentation."""
    return f"{STACK_LOCK_PREFIX}{stack_name}"


def is_route_table(owner: str) -> bool:
    """True when an instrumentation owner (DEBUGGER_SESSION_ID) is a shared stage's
    route table rather than one session."""
    return owner.startswith(STACK_LOCK_PREFIX)

A_FUNCTION_NAME = "FunctionName"
A_FUNCTION_ARN = "FunctionArn"
A_ROLE_NAME = "RoleName"
A_GRANT_ADDED = "GrantAdded"
A_INSTRUMENTED_BY = "InstrumentedBy"  # session id that instrumented the function
A_RESTORING_UNTIL = "RestoringUntil"  # epoch seconds: a manager run holds the record to restore

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
A_RESPONSE = "Response"
A_ERROR = "Error"
A_PAYLOAD_REF = "PayloadRef"
A_OWNER = "Owner"  # the function's aws:userid, which owns the request's payload prefix

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


def function_key(function_name: str) -> str:
    """The PLLDBSessions key of a function's instrumentation record."""
    return f"{FUNCTION_KEY_PREFIX}{function_name}"


def payload_key(owner: str, session_id: str, request_id: str, direction: str) -> str:
    """Bucket key of an offloaded payload; ``direction`` is 'event' or 'response'.

    ``owner`` is the function's ``aws:userid``: the shim policy opens a function's own
    prefix to presigned URLs, and no other (docs/security.md).
    """
    return f"{PAYLOAD_PREFIX}{owner}/{session_id}/{request_id}/{direction}.json"


def payload_owner(key: str, session_id: str, request_id: str, direction: str) -> str | None:
    """The owner of a payload key of this request, or None when the key is not one."""
    suffix = f"/{session_id}/{request_id}/{direction}.json"
    if not key.startswith(PAYLOAD_PREFIX) or not key.endswith(suffix):
        return None
    owner = key[len(PAYLOAD_PREFIX) : -len(suffix)]
    return owner if owner and "/" not in owner else None


def without_secrets(environment: dict[str, str]) -> dict[str, str]:
    """The environment minus credentials, as stored in PLLDBDebugger."""
    return {k: v for k, v in environment.items() if k not in SECRET_ENV_VARS}
