"""What the benchmarks and the reliability drills share: generated apps, a real `plldb attach`
process, execution environments started on demand, and the stack's observable state.

Everything runs on the local cloud (tests/harness/localcloud.py): generated SAM apps are
deployed into its moto with the harness's own `sam deploy` (so the Lambda front can run
them), `plldb attach` is the real command in a subprocess with the local cloud's
environment, and functions run in Runtime API emulator containers with real awslambdaric.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from plldb import naming
from tests.harness import localcloud, localcloud_attach, localcloud_stacks
from tests.harness.localcloud import LocalCloud
from tests.harness.localcloud_lambda import FunctionSpec, Invoker, Slot
from tests.harness.moto_server import FAKE_CREDENTIALS, REGION

BENCH_STACK = "plldb-bench"
ATTACHED_LINE = "attached: waiting for invocations"
SESSION_LINE = re.compile(r"session (?P<id>[0-9a-f-]{36}) opened")
DETACHED_LINE = re.compile(r"detached: (?P<count>\d+) function\(s\) restored")
TO_INSTRUMENT_LINE = "function(s) of stack"

# Fields of GetFunctionConfiguration that change on every update without changing what runs.
VOLATILE_FIELDS = frozenset(
    {
        "ResponseMetadata",
        "LastModified",
        "RevisionId",
        "LastUpdateStatus",
        "LastUpdateStatusReason",
        "LastUpdateStatusReasonCode",
        "State",
        "StateReason",
        "StateReasonCode",
    }
)

TRIVIAL_HANDLER = '''"""A trivial handler: what the added latency is measured with."""


def handler(event, context):
    return {"ok": True}
'''

SIZED_HANDLER = '''"""Answers with a JSON string of the size the event asks for (0: a tiny answer)."""


def handler(event, context):
    size = event.get("response_size", 0)
    if size:
        return "y" * (size - 2)
    return {"event_bytes": len(event.get("pad", ""))}
'''

# The drills' handler: records every execution (the local tool runs it in its own process),
# so that a duplicated run is seen even when the caller gets one answer.
RECORDING_HANDLER = '''"""Echoes the event's id and appends it to the execution log (one line per run)."""

import os

LOG = {log!r}


def handler(event, context):
    with open(LOG, "a") as log:
        log.write(f"{{event.get('n')}} {{context.aws_request_id}}\\n")
    return {{"n": event.get("n"), "function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME")}}
'''


# --------------------------------------------------------------------------- generated apps


def write_app(folder: Path, functions: dict[str, str], stack_name: str) -> Path:
    """A SAM app: one code folder per function (logical id -> handler source), no layers."""
    resources = {}
    for logical_id, source in functions.items():
        code = folder / "functions" / logical_id.lower()
        code.mkdir(parents=True, exist_ok=True)
        (code / "app.py").write_text(source)
        resources[logical_id] = {
            "Type": "AWS::Serverless::Function",
            "Properties": {"CodeUri": f"functions/{logical_id.lower()}/", "Handler": "app.handler"},
        }
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Globals": {"Function": {"Runtime": "python3.11", "Timeout": 30, "MemorySize": 128}},
        "Resources": resources,
    }
    (folder / "template.yaml").write_text(json.dumps(template, indent=1))  # JSON is YAML
    (folder / "samconfig.toml").write_text(
        f'version = 0.1\n\n[default.global.parameters]\nstack_name = "{stack_name}"\n'
    )
    return folder


def deploy_app(cloud: LocalCloud, app_dir: Path, stack_name: str) -> dict[str, str]:
    """`sam deploy` into the local cloud; logical id -> physical function name."""
    assert cloud.work_dir is not None, "the local cloud is not started"
    return localcloud_stacks.deploy_sam_app(
        localcloud._context(cloud.urls["moto"]),
        app_dir,
        stack_name,
        content_store(cloud),
        progress=lambda _line: None,
    )


def content_store(cloud: LocalCloud) -> localcloud_stacks.ContentStore:
    """The zips the Lambda front runs functions from (moto never gives code back)."""
    assert cloud.work_dir is not None
    return localcloud_stacks.ContentStore(cloud.work_dir / "content")


# --------------------------------------------------------------------------- boto3


@dataclass
class Clients:
    """boto3 clients pointed at the local cloud (Lambda through its front)."""

    cloud: LocalCloud
    max_attempts: int = 1  # 1: a failed call is reported, never hidden by a retry
    retries: int = 0  # retries botocore made (max_attempts > 1), over all calls
    lam: Any = field(init=False)
    iam: Any = field(init=False)
    dynamodb: Any = field(init=False)

    def __post_init__(self) -> None:
        session = boto3.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )
        config = botocore.config.Config(
            max_pool_connections=128,
            read_timeout=120,
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
        )
        self._lock = threading.Lock()
        moto = self.cloud.urls["moto"]
        self.lam = session.client("lambda", endpoint_url=self.cloud.urls["lambda"], config=config)
        self.iam = session.client("iam", endpoint_url=moto)
        self.dynamodb = session.client("dynamodb", endpoint_url=moto)

    def invoke(self, function: str, payload: bytes) -> tuple[bytes, str | None]:
        response = self.lam.invoke(FunctionName=function, Payload=payload)
        retried = response["ResponseMetadata"].get("RetryAttempts", 0)
        if retried:
            with self._lock:
                self.retries += retried
        return response["Payload"].read(), response.get("FunctionError")

    def session(self, session_id: str) -> dict[str, Any]:
        return self.dynamodb.get_item(
            TableName=naming.SESSIONS_TABLE,
            Key={naming.A_SESSION_ID: {"S": session_id}},
            ConsistentRead=True,
        ).get("Item", {})

    def connection_id(self, session_id: str) -> str | None:
        item = self.session(session_id)
        if item.get(naming.A_STATUS, {}).get("S") != naming.ACTIVE:
            return None
        return item.get(naming.A_CONNECTION_ID, {}).get("S")


def function_state(clients: Clients, name: str) -> dict[str, Any]:
    """What must be identical before attach and after detach: the configuration minus the
    fields every update changes, and the policies of the function's role."""
    config = clients.lam.get_function_configuration(FunctionName=name)
    stable = {k: v for k, v in config.items() if k not in VOLATILE_FIELDS}
    role = config["Role"].rsplit("/", 1)[-1]
    inline = {}
    for policy in clients.iam.list_role_policies(RoleName=role)["PolicyNames"]:
        try:
            document = clients.iam.get_role_policy(RoleName=role, PolicyName=policy)
        except clients.iam.exceptions.NoSuchEntityException:
            continue  # removed between the listing and the read: it is gone
        inline[policy] = document["PolicyDocument"]
    attached = clients.iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    return {"configuration": stable, "inline_policies": inline, "attached_policies": attached}


def stack_state(clients: Clients, names: list[str]) -> str:
    """The whole stack's :func:`function_state`, as canonical text (compared byte for byte)."""
    return json.dumps({n: function_state(clients, n) for n in sorted(names)}, sort_keys=True)


def is_instrumented(clients: Clients, name: str) -> bool:
    config = clients.lam.get_function_configuration(FunctionName=name)
    variables = (config.get("Environment") or {}).get("Variables") or {}
    return naming.ENV_SESSION_ID in variables


# --------------------------------------------------------------------------- plldb attach


class PlldbProcess(localcloud_attach.PlldbProcess):
    """`plldb attach` for the benchmarks and drills: lines timed from the process start."""

    def __init__(self, cloud: LocalCloud, app_dir: Path, *args: str, verbose: bool = False) -> None:
        flags = ["--verbose"] if verbose else []
        super().__init__([*flags, "attach", *args], app_dir, cloud.environment)

    def timed_lines(self) -> list[tuple[float, str]]:
        # the reader appends the time first: a line being added may lack its text yet
        return list(zip(self.arrivals, self.output, strict=False))

    def wait_line(self, match: Callable[[str], bool], timeout: float) -> tuple[float, str]:
        """The first line ``match`` accepts and when it arrived; TimeoutError with the output."""
        deadline = time.monotonic() + timeout
        while True:
            found = next(((at, line) for at, line in self.timed_lines() if match(line)), None)
            if found is not None:
                return found
            ended = self.process.poll() is not None and not self._reader.is_alive()
            if ended or time.monotonic() > deadline:
                raise TimeoutError(
                    f"plldb printed no matching line within {timeout:.0f}s "
                    f"(exit {self.process.poll()}):\n{self.text()[-3000:]}"
                )
            time.sleep(0.01)

    def wait_attached(self, timeout: float = 120.0) -> float:
        """Seconds from start to 'attached' (every function instrumented)."""
        at, _ = self.wait_line(lambda line: ATTACHED_LINE in line, timeout)
        return at - self.started

    def session_id(self, timeout: float = 60.0) -> str:
        _, line = self.wait_line(lambda text: SESSION_LINE.search(text) is not None, timeout)
        match = SESSION_LINE.search(line)
        assert match is not None
        return match["id"]

    def line_time(self, fragment: str) -> float | None:
        """Seconds from start to the first line containing ``fragment``."""
        return next((at - self.started for at, line in self.timed_lines() if fragment in line), None)

    def detach(self, timeout: float = 120.0) -> float:
        """Ctrl-C, then wait for the process to end; seconds until it did."""
        started = time.monotonic()
        self.interrupt(timeout)
        return time.monotonic() - started

    def __enter__(self) -> PlldbProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            try:
                self.detach(60)
            except subprocess.TimeoutExpired:
                self.kill()


# --------------------------------------------------------------------------- environments


class Environments:
    """Execution environments started directly (no Lambda front in the measured path).

    A function's configuration is read from moto with the Lambda front's own code
    (:class:`Invoker`), so an environment started while a function is instrumented runs
    the real layer with the instrumentation's variables, exactly as the front would.
    """

    def __init__(self, cloud: LocalCloud) -> None:
        assert cloud.work_dir is not None
        self.cloud = cloud
        self.store = content_store(cloud)
        self.work_dir = cloud.work_dir / "bench-environments"
        self.invoker = Invoker(cloud.urls["moto"], cloud.urls["lambda"], self.store, self.work_dir)
        self.extra_env = {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": cloud.urls["moto"],
            "AWS_ENDPOINT_URL_LAMBDA": cloud.urls["lambda"],
        }

    def spec(self, name: str) -> FunctionSpec:
        return self.invoker.spec_of(name)

    def code_dir(self, sha: str) -> Path:
        folder = self.work_dir / "code" / uuid.uuid4().hex
        with zipfile.ZipFile(io.BytesIO(self.store.get(sha))) as archive:
            archive.extractall(folder)
        return folder

    def start(self, spec: FunctionSpec) -> Slot:
        """A new execution environment (the runtime starts; :func:`cold_invoke` waits)."""
        workdir = self.work_dir / "containers" / uuid.uuid4().hex
        workdir.mkdir(parents=True)
        layers = [self.store.get(sha) for sha in spec.layer_sha256s]
        return Slot(spec, self.code_dir(spec.code_sha256), layers, workdir, self.extra_env)

    @contextmanager
    def running(self, spec: FunctionSpec) -> Iterator[Slot]:
        slot = self.start(spec)
        try:
            yield slot
        finally:
            slot.stop()


def timed_invoke(slot: Slot, payload: bytes, wait_s: float = 60.0) -> tuple[float, bytes]:
    """Seconds for one invocation through the slot's Runtime API; fails on any error."""
    started = time.perf_counter()
    result = slot.emulator.invoke(payload, slot.emulator.timeout_s, wait_s=wait_s)
    elapsed = time.perf_counter() - started
    if result.status != "success":
        raise RuntimeError(f"invocation failed ({result.status}): {result.body[:500]!r}")
    return elapsed, result.body


def interleaved(runs: int, *calls: Callable[[], float]) -> list[list[float]]:
    """Run the calls in turn ``runs`` times; the samples of each."""
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for index, call in enumerate(calls):
            samples[index].append(call())
    return samples
