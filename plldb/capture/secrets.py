"""Fields of captured events and results that hold secrets: blanked before a capture is written.

Captures stay on the developer's disk (``.plldb/``, 0600), but they are also what
``plldb events export`` turns into test data that gets committed, and what a developer
pastes into an issue. An event through API Gateway carries the caller's ``Authorization``
header and cookies; a login handler's result carries tokens. These well-known fields are
replaced by ``[redacted]`` unless attach runs with ``--capture-keep-secrets``; anything else
secret is for ``--capture-redact``.

Names match in any dictionary at any depth, case-insensitively, with ``-`` and ``_`` alike,
so ``headers.Authorization``, ``multiValueHeaders.cookie`` and ``body.client_secret`` are all
found. Lists under a matching name keep their length (each item blanked), so a replay hands
the handler the shape it expects.
"""

from __future__ import annotations

from typing import Any

REDACTED = "[redacted]"

SECRET_HEADERS = frozenset({
    "authorization", "proxy_authorization", "cookie", "set_cookie", "x_api_key",
    "x_amz_security_token", "x_auth_token", "x_csrf_token", "x_xsrf_token",
})
SECRET_KEYS = frozenset({
    "password", "passwd", "token", "secret", "access_token", "refresh_token", "id_token",
    "session_token", "client_secret", "api_key", "apikey", "private_key", "cookies",
})
SECRET_NAMES = SECRET_HEADERS | SECRET_KEYS


def is_secret(name: Any) -> bool:
    """Whether a field called ``name`` is one of the well-known secret fields."""
    return isinstance(name, str) and name.lower().replace("-", "_") in SECRET_NAMES


def redact_secrets(value: Any) -> Any:
    """``value`` (JSON data) with every well-known secret field blanked; a copy."""
    if isinstance(value, dict):
        return {k: _blank(v) if is_secret(k) else redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(item) for item in value]
    return value


def _blank(value: Any) -> Any:
    if isinstance(value, list):
        return [REDACTED] * len(value)
    return REDACTED


def redact(value: Any, path: tuple[str, ...]) -> Any:
    """``value`` with the field at ``path`` (a parsed ``--capture-redact`` path; ``*`` matches
    every key or item) replaced by a marker (a copy; absent: unchanged)."""
    if not path:
        return REDACTED
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: redact(v, rest) if head in ("*", k) else v for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, rest) if head == "*" or head == str(i) else v for i, v in enumerate(value)]
    return value
