"""The local cloud: moto, the helper stack, the gateway emulator and a Lambda that runs code.

``plldb`` finds it exactly the way it finds AWS: the environment (:attr:`LocalCloud.environment`)
points boto3 at it (``AWS_ENDPOINT_URL`` = moto, ``AWS_ENDPOINT_URL_LAMBDA`` = the Lambda
front), and the helper stack ``plldb`` in moto has the outputs bootstrap gives it in AWS,
with the gateway emulator's URLs. Nothing in plldb knows it is not AWS.

What runs (each process in a session of its own, so that a terminal's Ctrl-C reaches only
the program that owns the local cloud, which then stops them in order; stopped by PID;
logs in ``<state dir>/logs``):

* ``moto``: moto server (Lambda without Docker);
* ``gateway``: the WebSocket gateway emulator running the real helper Lambdas
  (tests/harness/localcloud_gateway.py configures it from the deployed helper stack);
* ``lambda``: the Lambda front (tests/harness/localcloud_lambda.py): ``Invoke`` of any other
  function runs it in a Runtime API emulator container with its current configuration and
  layers, every other Lambda call goes on to the gateway emulator and moto.

What is deployed (tests/harness/localcloud_stacks.py): the helper stack from the same zips
and keys bootstrap makes, and a SAM app (default tests/test_stack as ``plldb-test-stack``)
or instead a ready CloudFormation template (tests/harness/localcloud_templates.py: a CDK
app's, a Serverless service's).

Command line (one command starts, one stops)::

    python -m tests.harness.localcloud start --state-dir DIR [--grace-seconds S] [--no-app]
    python -m tests.harness.localcloud env --state-dir DIR    # `export ...` lines for a shell
    python -m tests.harness.localcloud stop --state-dir DIR

``start`` writes ``DIR/state.json`` (environment, URLs, PIDs, temporary folders, stacks) and
prints it; ``stop`` ends every process it lists by PID (and their children, e.g. function
containers), removes the temporary folders and the state file.

Python: ``with LocalCloud(LocalCloudSettings(...)) as cloud: cloud.environment ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import psutil

from plldb import limits, naming
from plldb.cloud.aws import AwsContext
from tests.harness import developer_policy, localcloud_templates, principals
from tests.harness import localcloud_stacks as stacks
from tests.harness.identity_proof import register_audience
from tests.harness.moto_server import FAKE_CREDENTIALS, REGION, MotoServer, free_port

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_STACK_DIR = REPO_ROOT / "tests" / "test_stack"
TEST_STACK_NAME = "plldb-test-stack"
STATE_FILE = "state.json"
DEVELOPER_USER = "plldb-developer"
DEVELOPER_POLICY = developer_policy.SHIPPED
# Functions tests create after the cloud started (by name, drills' and benchmarks' stacks):
# the developer may debug them too, as an administrator would list a team's stacks.
TEST_FUNCTIONS = ("plldb-by-name-*", "plldb-drill-*", "plldb-bench-*")
READY_TIMEOUT_S = 120.0  # a bound against a hung process only: a loaded machine is slow
STOP_GRACE_S = 10.0
WATCH_INTERVAL_S = 0.5


class LocalCloudError(stacks.LocalCloudError):
    """Starting or stopping the local cloud failed; the text says what and why."""


@dataclass
class LocalCloudSettings:
    """What to start. Short grace periods make disconnect tests fast."""

    grace_seconds: float = float(limits.DEFAULT_GRACE_SECONDS)
    max_lifetime: float = float(limits.CONNECTION_LIFETIME_SECONDS)  # API Gateway's 2 hours
    app_dir: Path | None = TEST_STACK_DIR  # None: no app deployed
    app_stack_name: str = TEST_STACK_NAME
    # Or a ready CloudFormation template (a CDK app's or Serverless service's), deployed as
    # app_stack_name instead of app_dir, each function's code zipped from the folder
    # app_code names by logical id (tests/harness/localcloud_templates.py).
    app_template: Path | None = None
    app_code: dict[str, Path] = field(default_factory=dict)
    max_containers: int = 8  # execution environments per function
    # IAM enforced once the stacks are deployed: plldb runs as the IAM user DEVELOPER_USER
    # with docs/iam/plldb-developer-policy.json narrowed to its functions (debuggable()),
    # every function with its execution role.
    enforce_iam: bool = True
    # Lifetime cap of every sts:AssumeRole's credentials (plldb's debugger role): None, AWS's
    # default; a few seconds make refresh paths run in a test.
    session_seconds: float | None = None
    # Share of $disconnect events the gateway loses (0: none, 1: all), seeded by drop_seed.
    drop_disconnect: float = 0.0
    drop_seed: int | None = None
    # Stop everything when the process that started it dies, even by SIGKILL (Python API);
    # the command line's `start` exits at once by design, so it does not set this.
    watch_owner: bool = True
    progress: Any = field(default=None, repr=False)  # callable(str) for deployment lines


@dataclass
class ProcessRecord:
    """A started process, identified by PID and creation time (PIDs get reused)."""

    name: str
    pid: int
    create_time: float

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "pid": self.pid, "create_time": self.create_time}


class LocalCloud:
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`."""

    def __init__(
        self, settings: LocalCloudSettings | None = None, state_dir: Path | None = None
    ) -> None:
        self.settings = settings or LocalCloudSettings()
        self._own_state_dir = state_dir is None
        self.state_dir = (
            Path(tempfile.mkdtemp(prefix="plldb-localcloud-state-"))
            if state_dir is None
            else state_dir
        )
        self.work_dir: Path | None = None
        self.processes: list[ProcessRecord] = []
        self._popens: list[subprocess.Popen] = []
        self._watcher: subprocess.Popen | None = None
        self.environment: dict[str, str] = {}  # plldb's: the developer user's credentials
        self.harness_environment: dict[str, str] = {}  # the account administrator's
        self.urls: dict[str, str] = {}
        self.helper_outputs: dict[str, str] = {}
        self.functions: dict[str, str] = {}  # app logical id -> physical function name

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> LocalCloud:
        """Start everything; on any failure, stop what was started and raise."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if (self.state_dir / STATE_FILE).exists():
            raise LocalCloudError(
                f"a local cloud is already running with state in {self.state_dir} (stop it first)"
            )
        self.work_dir = Path(tempfile.mkdtemp(prefix="plldb-localcloud-"))
        (self.state_dir / "logs").mkdir(exist_ok=True)
        self.write_state()  # from now on, `stop --state-dir` (and the watcher) can clean up
        try:
            if self.settings.watch_owner:
                self._watcher = self._start_watcher()
            self._start()
        except BaseException:
            self.stop()
            raise
        self.write_state()
        return self

    def _start(self) -> None:
        progress = self.settings.progress or (lambda line: log.info("%s", line))
        moto = self._start_moto()
        ctx = _context(moto.url)
        store = stacks.ContentStore(self.work_dir / "content")
        ws_port, http_port = free_port(), free_port()
        stage = stacks.stage_name(stacks.translate_sam(stacks.helper_template(), REGION))
        self.urls = {
            "moto": moto.url,
            "websocket": f"ws://127.0.0.1:{ws_port}/{stage}",
            "management": f"http://127.0.0.1:{http_port}/{stage}",
            "gateway_lambda": f"http://127.0.0.1:{http_port}",
        }
        register_audience(self.urls["websocket"], self.urls["management"])
        self.helper_outputs = stacks.provision_helper_stack(
            ctx,
            store,
            websocket_url=self.urls["websocket"],
            management_url=self.urls["management"],
            grace_seconds=self.settings.grace_seconds,
            progress=progress,
        )
        gateway = self._spawn(
            "gateway",
            [
                "-m",
                "tests.harness.localcloud_gateway",
                "--moto-url",
                moto.url,
                "--ws-port",
                str(ws_port),
                "--http-port",
                str(http_port),
                "--max-lifetime",
                str(self.settings.max_lifetime),
                "--drop-disconnect",
                str(self.settings.drop_disconnect),
                *(
                    ["--drop-seed", str(self.settings.drop_seed)]
                    if self.settings.drop_seed is not None
                    else []
                ),
            ],
        )
        if self.settings.app_template is not None:
            self.functions = localcloud_templates.deploy_template(
                ctx, self.settings.app_template, self.settings.app_code,
                self.settings.app_stack_name, store, progress,
            )
        elif self.settings.app_dir is not None:
            self.functions = stacks.deploy_sam_app(
                ctx, self.settings.app_dir, self.settings.app_stack_name, store, progress
            )
        helpers = stacks.stack_functions(ctx, naming.HELPER_STACK_NAME)
        front = self._spawn(
            "lambda",
            [
                "-m",
                "tests.harness.localcloud_lambda",
                "--moto-url",
                moto.url,
                "--upstream",
                self.urls["gateway_lambda"],
                "--content-dir",
                str(store.root),
                "--work-dir",
                str(self.work_dir),
                "--max-containers",
                str(self.settings.max_containers),
                *[arg for name in helpers.values() for arg in ("--forward-function", name)],
            ],
        )
        self._wait_ready(gateway)
        self.urls["lambda"] = self._wait_ready(front)["url"]
        endpoints = {"AWS_ENDPOINT_URL": moto.url, "AWS_ENDPOINT_URL_LAMBDA": self.urls["lambda"]}
        self.harness_environment = {**FAKE_CREDENTIALS, **endpoints}
        self.environment = self.harness_environment
        if self.settings.enforce_iam:
            self.environment = {**developer_credentials(ctx, self.debuggable()), **endpoints}
            moto.enforce_iam(max_session_seconds=self.settings.session_seconds)

    def debuggable(self) -> list[str]:
        """The functions the developer may debug: the app stack's, and those tests create
        after start (every such stack or function name starts with a prefix listed here)."""
        return [f"{self.settings.app_stack_name}-*", *TEST_FUNCTIONS]

    def stop(self) -> list[str]:
        """End every started process (and its children) by PID; remove temporary folders."""
        if self._watcher is not None:  # first, so that it does not race us
            self._watcher.terminate()
            self._watcher.wait(STOP_GRACE_S)
            self._watcher = None
        stopped = stop_processes(self.processes)
        for popen in self._popens:  # reap our own children so no zombie remains
            try:
                popen.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.error("process %d did not exit", popen.pid)
        self.processes, self._popens = [], []
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return stopped

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state --------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "harness_environment": self.harness_environment,
            "urls": self.urls,
            "processes": [p.as_dict() for p in self.processes],
            "temp_dirs": [str(self.work_dir)] if self.work_dir else [],
            "logs": str(self.state_dir / "logs"),
            "helper_stack": self.helper_outputs,
            "stacks": {self.settings.app_stack_name: self.functions} if self.functions else {},
        }

    def write_state(self) -> Path:
        path = self.state_dir / STATE_FILE
        path.write_text(json.dumps(self.state(), indent=2) + "\n")
        return path

    def administrator(self) -> boto3.Session:
        """A boto3 session with the harness's credentials: the account's administrator."""
        env = self.harness_environment
        return boto3.Session(
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=env["AWS_SESSION_TOKEN"],
            region_name=REGION,
        )

    @contextmanager
    def environ(self) -> Iterator[dict[str, str]]:
        """This process's os.environ pointed at the local cloud for the ``with`` block.

        With the harness's credentials: the account's administrator, who inspects and
        changes what plldb (:attr:`environment`) may not.
        """
        names = [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL") or n == "AWS_PROFILE"]
        saved = {n: os.environ.get(n) for n in [*names, *self.harness_environment]}
        for name in names:
            del os.environ[name]
        os.environ.update(self.harness_environment)
        try:
            yield self.harness_environment
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    # --- processes ----------------------------------------------------------------------

    def _adopt(self, name: str, popen: subprocess.Popen | None) -> None:
        assert popen is not None
        self._popens.append(popen)
        self.processes.append(
            ProcessRecord(name, popen.pid, psutil.Process(popen.pid).create_time())
        )
        self.write_state()

    def _start_moto(self) -> MotoServer:
        """MotoServer's process, but in a session of its own like the other services."""
        moto = MotoServer()
        moto.process = self._spawn(
            "moto", ["-m", "tests.harness.moto_launcher", "-H", "127.0.0.1", "-p", str(moto.port)]
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(f"{moto.url}/moto-api/data.json", timeout=1).read()
                break
            except OSError:
                if moto.process.poll() is not None or time.monotonic() > deadline:
                    raise LocalCloudError(
                        f"moto did not start: see {self.state_dir}/logs"
                    ) from None
                time.sleep(0.1)
        moto.configure()
        return moto

    def _start_watcher(self) -> subprocess.Popen:
        """A process of its own session that runs `stop` if this process dies first."""
        me = psutil.Process()
        args = ["watch", "--state-dir", str(self.state_dir), "--owner", str(me.pid)]
        args += ["--owner-create-time", repr(me.create_time())]
        if self._own_state_dir:
            args.append("--remove-state-dir")
        with (self.state_dir / "logs" / "watch.log").open("ab") as log_file:
            return subprocess.Popen(
                [sys.executable, "-m", "tests.harness.localcloud", *args],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        logs = self.state_dir / "logs"
        with (logs / f"{name}.out").open("wb") as out, (logs / f"{name}.log").open("ab") as err:
            popen = subprocess.Popen(
                [sys.executable, *args],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env={**os.environ, **FAKE_CREDENTIALS},
                start_new_session=True,
            )
        self._adopt(name, popen)
        return popen

    def _wait_ready(self, popen: subprocess.Popen) -> dict[str, Any]:
        """The JSON line a service prints once it serves; its log when it dies instead."""
        name = next(p.name for p in self.processes if p.pid == popen.pid)
        out = self.state_dir / "logs" / f"{name}.out"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            text = out.read_text()
            if text.endswith("\n"):
                return json.loads(text.splitlines()[0])
            if popen.poll() is not None:
                log_text = (self.state_dir / "logs" / f"{name}.log").read_text()[-2000:]
                raise LocalCloudError(f"{name} exited with {popen.returncode}:\n{log_text}")
            time.sleep(0.05)
        raise LocalCloudError(f"{name} not ready after {READY_TIMEOUT_S:.0f}s")


def developer_credentials(ctx: AwsContext, functions: Iterable[str]) -> dict[str, str]:
    """The IAM user plldb runs as: the policy users attach (docs/iam/), narrowed to
    ``functions`` as the README tells an administrator to, and a fresh key."""
    developer = principals.create_user(
        ctx.client("iam"),
        DEVELOPER_USER,
        developer_policy.narrowed(functions),
        policy_name="plldb-developer",
    )
    return developer.credentials


def _context(moto_url: str) -> AwsContext:
    """An AwsContext whose every client goes to moto, leaving os.environ alone."""
    session = principals.EndpointSession(
        moto_url,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )
    return AwsContext(region=REGION, _session=session)


def stop_processes(records: list[ProcessRecord]) -> list[str]:
    """SIGTERM each process (then SIGKILL), and SIGKILL whatever of its children remain.

    A PID whose creation time differs is another process now and is left alone.
    """
    stopped = []
    for record in reversed(records):  # services before moto, which they use
        try:
            process = psutil.Process(record.pid)
            if abs(process.create_time() - record.create_time) > 0.01:
                log.warning("pid %d is no longer %s: left alone", record.pid, record.name)
                continue
            children = process.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        _end(process, signal.SIGTERM)
        for child in children:
            _end(child, signal.SIGKILL)
        stopped.append(f"{record.name} ({record.pid})")
    return stopped


def _end(process: psutil.Process, first: signal.Signals) -> None:
    try:
        process.send_signal(first)
        process.wait(STOP_GRACE_S)
    except psutil.TimeoutExpired:
        process.kill()
        process.wait(STOP_GRACE_S)
    except psutil.NoSuchProcess:
        pass


# --- command line -----------------------------------------------------------------------


def stop_from_state(state_dir: Path) -> list[str]:
    """`stop`: everything ``state.json`` lists, by PID; then its folders and the file."""
    path = state_dir / STATE_FILE
    if not path.exists():
        raise LocalCloudError(f"no local cloud state in {state_dir} (nothing to stop)")
    state = json.loads(path.read_text())
    stopped = stop_processes([ProcessRecord(**p) for p in state["processes"]])
    for folder in state["temp_dirs"]:
        shutil.rmtree(folder, ignore_errors=True)
    path.unlink()
    return stopped


def watch(state_dir: Path, owner: int, owner_create_time: float, remove_state_dir: bool) -> None:
    """`watch`: wait for the owner process to end, then stop its local cloud.

    SIGTERM (sent by :meth:`LocalCloud.stop`) ends the watch without doing anything.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while _alive(owner, owner_create_time):
        time.sleep(WATCH_INTERVAL_S)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finish the cleanup once started
    if (state_dir / STATE_FILE).exists():
        for line in stop_from_state(state_dir):
            log.info("owner %d is gone: stopped %s", owner, line)
    if remove_state_dir:
        shutil.rmtree(state_dir, ignore_errors=True)


def _alive(pid: int, create_time: float) -> bool:
    try:
        process = psutil.Process(pid)
        return (
            abs(process.create_time() - create_time) < 0.01
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.NoSuchProcess:
        return False


def shell_exports(environment: dict[str, str]) -> str:
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in environment.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start or stop the PLLDB local cloud.")
    parser.add_argument("command", choices=["start", "stop", "env", "watch"])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument(
        "--grace-seconds", type=float, default=float(limits.DEFAULT_GRACE_SECONDS)
    )
    parser.add_argument("--app-dir", type=Path, default=TEST_STACK_DIR)
    parser.add_argument("--no-app", action="store_true", help="deploy no SAM app")
    parser.add_argument("--max-containers", type=int, default=8)
    parser.add_argument("--owner", type=int, help="watch: the process to outlive")
    parser.add_argument("--owner-create-time", type=float, help="watch: its creation time")
    parser.add_argument("--remove-state-dir", action="store_true", help="watch: then remove it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if args.command == "start":
            settings = LocalCloudSettings(
                grace_seconds=args.grace_seconds,
                app_dir=None if args.no_app else args.app_dir,
                max_containers=args.max_containers,
                watch_owner=False,
                progress=lambda line: print(line, file=sys.stderr),
            )
            cloud = LocalCloud(settings, args.state_dir.resolve()).start()
            print(json.dumps(cloud.state(), indent=2))
        elif args.command == "watch":
            watch(args.state_dir, args.owner, args.owner_create_time, args.remove_state_dir)
        elif args.command == "stop":
            for line in stop_from_state(args.state_dir):
                print(f"stopped {line}", file=sys.stderr)
        else:
            state = json.loads((args.state_dir / STATE_FILE).read_text())
            print(shell_exports(state["environment"]))
    except (LocalCloudError, FileNotFoundError) as exc:
        print(f"localcloud: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
