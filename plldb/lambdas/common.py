"""What the helper Lambdas share: configuration, boto3 clients, posting to a connection.

Configuration is read from the environment at call time (the template sets it; the gateway
emulator sets the same variables), never at import time, so one warm process always sees
its current configuration.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from plldb import limits, naming, protocol

log = logging.getLogger("plldb.lambdas")
log.setLevel(logging.INFO)

_CLIENT_CONFIG = botocore.config.Config(
    retries={"max_attempts": 4, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
)
# The template's ShimAccessPolicy, which the manager attaches to instrumented functions' roles.
ENV_SHIM_POLICY_ARN = "PLLDB_SHIM_POLICY_ARN"
_clients: dict[tuple, Any] = {}
_clients_lock = threading.Lock()


class ConfigurationError(RuntimeError):
    """A variable the template must set is missing: the helper stack is broken."""


@dataclass(frozen=True)
class Config:
    """The helper Lambdas' environment, as set by the helper stack template."""

    sessions_table: str
    debugger_table: str
    manager_function: str
    layer_arn: str
    management_url: str
    payload_bucket: str
    connections_arn: str
    shim_policy_arn: str
    grace_seconds: float
    default_timeout: int

    @classmethod
    def from_environ(cls) -> Config:
        env = os.environ
        return cls(
            sessions_table=env.get(naming.ENV_SESSIONS_TABLE, naming.SESSIONS_TABLE),
            debugger_table=env.get(naming.ENV_DEBUGGER_TABLE, naming.DEBUGGER_TABLE),
            manager_function=env.get(naming.ENV_MANAGER_FUNCTION, ""),
            layer_arn=env.get(naming.ENV_LAYER_ARN, ""),
            management_url=env.get(naming.ENV_MANAGEMENT_URL, ""),
            payload_bucket=env.get(naming.ENV_PAYLOAD_BUCKET, ""),
            connections_arn=env.get(naming.ENV_CONNECTIONS_ARN, ""),
            shim_policy_arn=env.get(ENV_SHIM_POLICY_ARN, ""),
            grace_seconds=_number(naming.ENV_GRACE_SECONDS, limits.DEFAULT_GRACE_SECONDS),
            default_timeout=int(
                _number(naming.ENV_DEFAULT_TIMEOUT, limits.DEFAULT_DEBUG_TIMEOUT)
            ),
        )

    def require(self, *names: str) -> None:
        """Fail with the variable's name rather than with an obscure boto3 error later."""
        missing = [name for name in names if not getattr(self, name)]
        if missing:
            raise ConfigurationError(f"helper Lambda configuration lacks {', '.join(missing)}")


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from exc


def client(service: str, endpoint_url: str | None = None) -> Any:
    """A cached boto3 client; the cache key includes the endpoint variables botocore reads.

    Clients are reused across warm invocations (creating one costs tens of milliseconds on
    every WebSocket message otherwise) and are thread-safe once created.
    """
    env = os.environ
    key = (
        service,
        endpoint_url,
        env.get("AWS_ENDPOINT_URL"),
        env.get(f"AWS_ENDPOINT_URL_{service.upper()}"),
        env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        env.get("AWS_ACCESS_KEY_ID"),
    )
    with _clients_lock:
        if key not in _clients:
            session = boto3.session.Session()
            _clients[key] = session.client(
                service, endpoint_url=endpoint_url, config=_CLIENT_CONFIG
            )
        return _clients[key]


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def now() -> int:
    return int(time.time())


def iso_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(value: Any) -> str:
    """Stable JSON text for what is stored and compared (sorted keys, compact)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def authorizer_context(event: Any) -> dict[str, Any]:
    """The flat context the authorizer returned, as API Gateway passes it to later routes."""
    if not isinstance(event, dict):
        return {}
    request_context = event.get("requestContext")
    if not isinstance(request_context, dict):
        return {}
    context = request_context.get("authorizer")
    return context if isinstance(context, dict) else {}


def connection_id_of(event: Any) -> str | None:
    if not isinstance(event, dict) or not isinstance(event.get("requestContext"), dict):
        return None
    value = event["requestContext"].get("connectionId")
    return value if isinstance(value, str) and value else None


# Outcomes of one post to a connection.
SENT, GONE, FAILED = "sent", "gone", "failed"
CONNECT_RETRY_FIRST_SECONDS = 0.25  # a $connect integration usually completes within a second
CONNECT_RETRY_MAX_SECONDS = 2.0


class Connection:
    """Posts server messages to one WebSocket connection through the management API.

    A connection that has gone away (GoneException) is remembered, so a long run of progress
    messages stops trying; the work itself carries on.

    ``connecting``: the run was started by ``$connect``, whose connection does not exist
    until that route's integration has completed (API Gateway answers 410 until then). A
    410 is then retried until the first post gets through, for at most
    :data:`~plldb.limits.CONNECT_POST_WAIT_SECONDS` from the run's start; after that, or
    after a first post got through, a 410 means the connection is gone.
    """

    def __init__(
        self, connection_id: str | None, management_url: str, connecting: bool = False
    ) -> None:
        self.connection_id = connection_id
        self.management_url = management_url
        self.gone = not connection_id or not management_url
        self.wait_until = time.monotonic() + (limits.CONNECT_POST_WAIT_SECONDS if connecting else 0)

    def post(self, message: dict[str, Any]) -> bool:
        """Send one message; False when it could not be delivered."""
        if self.gone:
            return False
        data = self.encoded(message)
        if data is None:
            return False
        delay = CONNECT_RETRY_FIRST_SECONDS
        while True:
            result = self.send(data)
            if result != GONE:
                if result == SENT:
                    self.wait_until = 0.0  # it exists: from now on a 410 means gone
                return result == SENT
            if time.monotonic() + delay > self.wait_until:
                log.info("connection %s is gone", self.connection_id)
                self.gone = True
                return False
            log.info(
                "connection %s does not exist yet ($connect has not completed): retrying",
                self.connection_id,
            )
            time.sleep(delay)
            delay = min(delay * 2, CONNECT_RETRY_MAX_SECONDS)

    @staticmethod
    def encoded(message: dict[str, Any]) -> bytes | None:
        """The message as posted, within one post's size (a summary loses its reasons)."""
        data = protocol.encode(message).encode()
        if len(data) > limits.POST_SIZE and "summary" in message:
            data = protocol.encode({**message, "summary": names_only(message["summary"])}).encode()
        if len(data) > limits.POST_SIZE:
            log.error(
                "not posting a %d byte %s message: over the %d byte limit of a post",
                len(data), message.get("type"), limits.POST_SIZE,
            )
            return None
        return data

    def send(self, data: bytes) -> str:
        """One PostToConnection: SENT, GONE (410) or FAILED (anything else, logged)."""
        api = client("apigatewaymanagementapi", endpoint_url=self.management_url)
        try:
            api.post_to_connection(ConnectionId=self.connection_id, Data=data)
            return SENT
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "GoneException":
                return GONE
            log.error("posting to %s failed: %s", self.connection_id, exc)
        except botocore.exceptions.BotoCoreError as exc:
            log.error("posting to %s failed: %s", self.connection_id, exc)
        return FAILED


def mark_disconnected(config: Config, session_id: str, connection_id: str) -> bool:
    """ACTIVE on ``connection_id`` -> DISCONNECTED (with the time); False if not on it any more.

    ``$disconnect`` does this, and the manager's sweep when it finds the connection gone and
    the ``$disconnect`` lost (API Gateway delivers it on a best-effort basis).
    """
    try:
        client("dynamodb").update_item(
            TableName=config.sessions_table,
            Key={naming.A_SESSION_ID: {"S": session_id}},
            ConditionExpression="#status = :active AND #conn = :conn",
            UpdateExpression="SET #status = :disconnected, #at = :at",
            ExpressionAttributeNames={
                "#status": naming.A_STATUS,
                "#conn": naming.A_CONNECTION_ID,
                "#at": naming.A_DISCONNECTED_AT,
            },
            ExpressionAttributeValues={
                ":active": {"S": naming.ACTIVE},
                ":disconnected": {"S": naming.DISCONNECTED},
                ":conn": {"S": connection_id},
                ":at": {"S": iso_now()},
            },
        )
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise
        return False
    return True


def names_only(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary too large for one post, without the reasons (each was posted on its own)."""
    return {
        key: [{**entry, "reason": ""} if isinstance(entry, dict) else entry for entry in value]
        if isinstance(value, list)
        else value
        for key, value in summary.items()
    }


def invoke_manager(config: Config, payload: dict[str, Any]) -> None:
    """Start the manager asynchronously: the WebSocket routes must answer within 29 s."""
    config.require("manager_function")
    client("lambda").invoke(
        FunctionName=config.manager_function,
        InvocationType="Event",
        Payload=json.dumps(payload).encode(),
    )
