"""Execution-role credentials, as Lambda hands them to a function, for the local cloud.

Lambda assumes a function's execution role (its trust policy must allow
``lambda.amazonaws.com``) and puts the credentials into the function's environment. The
gateway emulator (helper Lambdas) and the Lambda front (user functions) get them here from
the moto launcher's service-credentials endpoint, one role session per function, and fetch
new ones once the cached set comes within :data:`REFRESH_MARGIN_S` of its expiry.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from datetime import datetime

from tests.harness.moto_server import MotoServer

SESSION_SECONDS = 3600  # what a role session of an execution environment lasts here
REFRESH_MARGIN_S = 300.0  # a new invocation or container never gets less than this


class RoleCredentials:
    """``AWS_ACCESS_KEY_ID``/``SECRET``/``SESSION_TOKEN`` of execution roles, cached."""

    def __init__(self, moto_url: str, session_seconds: int = SESSION_SECONDS) -> None:
        self._moto = MotoServer(port=urllib.parse.urlsplit(moto_url).port)
        self._session_seconds = session_seconds
        self._cache: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def environment(self, role_arn: str, function_name: str) -> dict[str, str]:
        """The credential variables of ``function_name`` running under ``role_arn``."""
        return self.issue(role_arn, function_name)[1]

    def issue(self, role_arn: str, function_name: str) -> tuple[float, dict[str, str]]:
        """Expiry (epoch seconds) and credential variables, at least REFRESH_MARGIN_S left."""
        key = (role_arn, function_name)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and fresh(cached[0]):
                return cached
            issued = self._moto.service_credentials(
                role_arn, function_name[:64], self._session_seconds
            )
            expires = datetime.fromisoformat(issued.pop("Expiration")).timestamp()
            self._cache[key] = (expires, issued)
            return expires, issued


def fresh(expires: float) -> bool:
    """Whether credentials expiring at ``expires`` may still be handed out."""
    return expires - time.time() > REFRESH_MARGIN_S
