"""A minimal client of the Lambda Runtime API (2018-06-01), standard library only.

The shim owns the runtime loop while a function is debugged, so it makes the calls
awslambdaric makes: ``next``, ``response``, ``error`` and ``init/error``. One persistent HTTP
connection is kept to the local endpoint, as the real clients do; ``next`` blocks without a
timeout because Lambda freezes the process between invocations. Header names and the error
body come from :mod:`plldb.runner`, the module that reproduces awslambdaric.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plldb import runner

API_PREFIX = "/2018-06-01/runtime"


class RuntimeApiError(RuntimeError):
    """The Runtime API answered with an unexpected status: the sandbox is in a bad state."""


@dataclass(frozen=True)
class Invocation:
    """One event as ``/invocation/next`` delivers it: body and headers, untouched."""

    body: bytes
    headers: Mapping[str, str]

    def header(self, name: str) -> str | None:
        return runner.header(self.headers, name)

    @property
    def request_id(self) -> str:
        return self.header(runner.H_REQUEST_ID) or ""

    @property
    def deadline_ms(self) -> int:
        return int(self.header(runner.H_DEADLINE_MS) or 0)

    def context_fields(self) -> dict[str, Any]:
        """What the local tool rebuilds the context from, as the ``invocation`` and
        ``mirror`` messages carry it (plldb/protocol.py)."""
        return {
            "request_id": self.request_id,
            "invoked_function_arn": self.header(runner.H_FUNCTION_ARN) or "",
            "deadline_ms": self.deadline_ms,
            "trace_id": self.header(runner.H_TRACE_ID),
            "client_context": self.header(runner.H_CLIENT_CONTEXT),
            "cognito_identity": self.header(runner.H_COGNITO_IDENTITY),
            "tenant_id": self.header(runner.H_TENANT_ID),
        }


class RuntimeApi:
    """Client of the Runtime API at ``AWS_LAMBDA_RUNTIME_API`` (``host:port``)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._connection = http.client.HTTPConnection(address)

    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request on the kept-alive connection, reconnecting once if it was dropped."""
        for attempt in (1, 2):
            try:
                self._connection.request(method, API_PREFIX + path, body=body, headers=headers or {})
                response = self._connection.getresponse()
                return response.status, response.headers, response.read()
            except (ConnectionError, http.client.HTTPException):
                self._connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def next_invocation(self) -> Invocation:
        """Block until Lambda hands over the next event."""
        status, headers, body = self._request("GET", "/invocation/next")
        if status != 200:
            raise RuntimeApiError(f"GET /invocation/next answered {status}: {body[:200]!r}")
        invocation = Invocation(body=body, headers=dict(headers.items()))
        if not invocation.request_id:
            raise RuntimeApiError(f"GET /invocation/next answered without {runner.H_REQUEST_ID}")
        return invocation

    def post_response(
        self, invocation: Invocation, body: bytes, content_type: str = runner.JSON_CONTENT_TYPE
    ) -> None:
        headers = {**_echo(invocation), "Content-Type": content_type}
        self._post(f"/invocation/{invocation.request_id}/response", body, headers)

    def post_error(self, invocation: Invocation, error: Mapping[str, Any]) -> None:
        """Post an error in the runtime's shape; its type also goes in the error-type header."""
        headers = {**_echo(invocation), **_error_headers(error)}
        self._post(f"/invocation/{invocation.request_id}/error", runner.error_body(error), headers)

    def post_init_error(self, error: Mapping[str, Any]) -> None:
        self._post("/init/error", runner.error_body(error), _error_headers(error))

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        status, _, answer = self._request("POST", path, body, headers)
        if status != 202:
            raise RuntimeApiError(f"POST {path} answered {status}: {answer[:200]!r}")


def _echo(invocation: Invocation) -> dict[str, str]:
    """Lambda asks runtimes to send back the invocation id it gave with the event."""
    invocation_id = invocation.header(runner.H_INVOCATION_ID)
    return {runner.H_INVOCATION_ID: invocation_id} if invocation_id else {}


def _error_headers(error: Mapping[str, Any]) -> dict[str, str]:
    return {
        runner.H_FUNCTION_ERROR_TYPE: str(error.get("errorType") or "Unhandled"),
        "Content-Type": runner.JSON_CONTENT_TYPE,
    }
