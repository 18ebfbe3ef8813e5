"""The context a handler receives, built from the Runtime API's headers as awslambdaric builds it.

Standard library only: bundled into the runtime layer with the rest of :mod:`plldb.runner`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from plldb.runner.faults import CONTEXT_UNMARSHAL_ERROR, RuntimeFault

# --- Runtime API (2018-06-01) header names ------------------------------------------------
H_REQUEST_ID = "Lambda-Runtime-Aws-Request-Id"
H_DEADLINE_MS = "Lambda-Runtime-Deadline-Ms"
H_FUNCTION_ARN = "Lambda-Runtime-Invoked-Function-Arn"
H_TRACE_ID = "Lambda-Runtime-Trace-Id"
H_CLIENT_CONTEXT = "Lambda-Runtime-Client-Context"
H_COGNITO_IDENTITY = "Lambda-Runtime-Cognito-Identity"
H_TENANT_ID = "Lambda-Runtime-Aws-Tenant-Id"
H_INVOCATION_ID = "Lambda-Runtime-Invocation-Id"
H_FUNCTION_ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
TRACE_ENV = "_X_AMZN_TRACE_ID"

JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/unknown"

_W3C_FIELDS = ("traceparent", "tracestate", "baggage")


# --- Context --------------------------------------------------------------------------------


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __repr__(self) -> str:
        return (f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
                f"cognito_identity_pool_id={self.cognito_identity_pool_id}])")


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code",
                 "app_package_name")

    def __repr__(self) -> str:
        return (f"Client([installation_id={self.installation_id},app_title={self.app_title},"
                f"app_version_name={self.app_version_name},"
                f"app_version_code={self.app_version_code},"
                f"app_package_name={self.app_package_name}])")


class ClientContext:
    __slots__ = ("custom", "env", "client")

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


def _from_dict(cls: type, values: dict[str, Any] | None) -> Any:
    """Like the runtime: every slot set, missing keys as None; None stays None."""
    if values is None:
        return None
    obj = cls()
    for name in cls.__slots__:
        setattr(obj, name, values.get(name))
    return obj


class LambdaContext:
    """The ``context`` argument of a handler, with the runtime's attributes and methods."""

    def __init__(self, request_id: str, client_context: dict | None, cognito_identity: dict | None,
                 deadline_ms: int, invoked_function_arn: str | None, environ: Mapping[str, str],
                 tenant_id: str | None = None) -> None:
        self.aws_request_id = request_id
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
        # A string, as in the runtime (it reads the environment variable unchanged).
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self._w3c_fields = _pop_w3c(client_context)
        self.client_context = _from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _from_dict(Client, self.client_context.client)
        self.identity = _from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the real (epoch) deadline, never negative."""
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def w3c(self) -> dict[str, str]:
        """The W3C trace context that came in the client context (a copy)."""
        return dict(self._w3c_fields)

    def log(self, msg: Any) -> None:
        """Write to the runtime's log sink when one is installed, else to stdout."""
        for handler in logging.getLogger().handlers:
            if hasattr(handler, "log_sink"):
                handler.log_sink.log(str(msg))
                return
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (f"LambdaContext([aws_request_id={self.aws_request_id},"
                f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
                f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
                f"function_version={self.function_version},"
                f"invoked_function_arn={self.invoked_function_arn},"
                f"client_context={self.client_context},identity={self.identity},"
                f"tenant_id={self.tenant_id}])")


def _pop_w3c(client_context: Any) -> dict[str, str]:
    """The runtime removes ``w3c`` from the client context and keeps its string fields."""
    if not isinstance(client_context, dict) or "w3c" not in client_context:
        return {}
    raw = client_context.pop("w3c")
    if not isinstance(raw, dict):
        return {}
    return {key: raw[key] for key in _W3C_FIELDS if isinstance(raw.get(key), str)}


def _parse_json_header(value: str, name: str) -> Any:
    try:
        return json.loads(value)
    except Exception as exc:  # the runtime reports any parse failure the same way
        raise RuntimeFault(CONTEXT_UNMARSHAL_ERROR, f"Unable to parse {name} JSON: {exc}") from exc


def build_context(request_id: str, deadline_ms: int, invoked_function_arn: str,
                  client_context: str | None, cognito_identity: str | None,
                  environ: Mapping[str, str], tenant_id: str | None = None) -> LambdaContext:
    """The context for one invocation, from raw header values and the function's environment."""
    client = _parse_json_header(client_context, "Client Context") if client_context else None
    identity = _parse_json_header(cognito_identity, "Cognito Identity") if cognito_identity else None
    return LambdaContext(request_id, client, identity, int(deadline_ms), invoked_function_arn,
                         environ, tenant_id)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup (HTTP header names are case-insensitive)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def context_from_headers(headers: Mapping[str, str], environ: Mapping[str, str]) -> LambdaContext:
    """The context for the invocation described by a Runtime API ``/next`` response."""
    return build_context(
        header(headers, H_REQUEST_ID) or "",
        int(header(headers, H_DEADLINE_MS) or 0),
        header(headers, H_FUNCTION_ARN) or "",
        header(headers, H_CLIENT_CONTEXT),
        header(headers, H_COGNITO_IDENTITY),
        environ,
        header(headers, H_TENANT_ID),
    )
