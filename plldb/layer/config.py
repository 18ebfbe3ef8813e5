"""What the manager put in an instrumented function's environment for the shim.

Standard library only: it is read before the shim knows whether an invocation needs AWS
clients at all (plldb/layer/stage.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from plldb import limits, naming


class ShimConfigError(RuntimeError):
    """A variable the manager sets on instrumented functions is missing."""


@dataclass(frozen=True)
class ShimConfig:
    """What the manager put in the function's environment for the shim."""

    session_id: str
    sessions_table: str
    debugger_table: str
    management_url: str
    payload_bucket: str
    function_name: str
    grace_seconds: float = float(limits.DEFAULT_GRACE_SECONDS)

    @property
    def shared(self) -> bool:
        """A shared stage: the session variable names the stack's route table."""
        return naming.is_route_table(self.session_id)

    @classmethod
    def from_environ(cls, environ: dict[str, str] | os._Environ) -> ShimConfig:
        required = {
            "session_id": naming.ENV_SESSION_ID,
            "sessions_table": naming.ENV_SESSIONS_TABLE,
            "debugger_table": naming.ENV_DEBUGGER_TABLE,
            "management_url": naming.ENV_MANAGEMENT_URL,
            "function_name": "AWS_LAMBDA_FUNCTION_NAME",
        }
        missing = [name for name in required.values() if not environ.get(name)]
        if missing:
            raise ShimConfigError(f"missing environment variable(s): {', '.join(missing)}")
        values = {field: environ[name] for field, name in required.items()}
        return cls(
            payload_bucket=environ.get(naming.ENV_PAYLOAD_BUCKET, ""),
            grace_seconds=_seconds(environ.get(naming.ENV_GRACE_SECONDS)),
            **values,
        )


def _seconds(raw: str | None) -> float:
    """The grace period from the environment; the default when unset or not a number."""
    try:
        return max(0.0, float(raw)) if raw else float(limits.DEFAULT_GRACE_SECONDS)
    except ValueError:
        return float(limits.DEFAULT_GRACE_SECONDS)
