"""A real moto server process on 127.0.0.1, started and stopped by PID.

Used by the tests, the local cloud and the benchmarks: boto3 reaches it through
``AWS_ENDPOINT_URL`` exactly as it would reach AWS.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
LAMBDA = "lambda.amazonaws.com"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
# Bounds that only stop a hung server: a reset takes well under a second on an idle machine,
# but a loaded one (tests in parallel on few cores) stretches every call many times over.
START_TIMEOUT_S = 120.0
CONTROL_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    """One moto server process (see moto_launcher: atomic DynamoDB, IAM enforcement on demand,
    expiring credentials); ``url`` is its endpoint."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = START_TIMEOUT_S) -> MotoServer:
        env = {**os.environ, **FAKE_CREDENTIALS}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.harness.moto_launcher",
                "-H",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=REPO_ROOT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError("moto server did not start in time")
        self.configure()
        return self

    def configure(self) -> None:
        """Lambda without Docker: functions are created and configured, never run by moto."""
        self._post("/moto-api/config", {"lambda": {"use_docker": False}})

    def reset(self) -> None:
        """A clean moto, and the launcher's run-time settings back to their defaults.

        The settings live outside moto's state: a test that enforced IAM or capped role
        sessions would otherwise hand them on to the next test on this server.
        """
        self._post("/moto-api/reset", None)
        self._post("/plldb-localcloud/iam", {"enforce": False, "max_session_seconds": None})
        self.lag_indexes(0)
        self.configure()

    def enforce_iam(self, enforce: bool = True, max_session_seconds: float | None = None) -> None:
        """Every request from now needs IAM credentials and a policy that allows it.

        ``max_session_seconds`` caps the lifetime of every sts:AssumeRole's credentials.
        """
        body: dict = {"enforce": enforce}
        if max_session_seconds is not None:
            body["max_session_seconds"] = max_session_seconds
        self._post("/plldb-localcloud/iam", body)

    def cap_sessions(self, seconds: float | None) -> None:
        """Every sts:AssumeRole from now lasts at most ``seconds`` (None: as long as asked)."""
        self._post("/plldb-localcloud/iam", {"max_session_seconds": seconds})

    def service_credentials(
        self, role_arn: str, session_name: str, duration_seconds: int, service: str = LAMBDA
    ) -> dict[str, str]:
        """Credentials of ``role_arn`` as ``service`` gets them (its trust policy decides).

        ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN`` and the
        ``Expiration`` (ISO 8601).
        """
        body = {
            "service": service,
            "role_arn": role_arn,
            "session_name": session_name,
            "duration_seconds": duration_seconds,
        }
        return self._post("/plldb-localcloud/service-credentials", body)

    def lag_indexes(self, seconds: float) -> None:
        """From now on, DynamoDB index queries miss writes younger than ``seconds``."""
        self._post("/plldb-localcloud/dynamodb", {"index_lag_seconds": seconds})

    def egress(self, function_arn: str) -> str:
        """The HTTP proxy through which ``function_arn``'s execution environments reach AWS
        (their requests carry ``lambda:SourceFunctionArn``: tests/harness/execution_egress.py)."""
        return self._post("/plldb-localcloud/egress", {"function_arn": function_arn})["proxy_url"]

    def _post(self, path: str, body: dict | None) -> dict:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(f"{self.url}{path}", data=data, method="POST")
        text = urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_S).read()
        return json.loads(text) if path.startswith("/plldb-localcloud/") else {}

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 (in this or a child process) at this server."""
        return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.url}
