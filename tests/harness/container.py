"""Launch a function's runtime process the way Lambda starts a container.

Layout (under ``workdir``): ``task/`` (a copy of the function's code: LAMBDA_TASK_ROOT),
``opt/`` (the layers, extracted in order with their file modes: stands for ``/opt``) and
``runtime.log`` (stdout and stderr of the runtime). The command is the Python runtime's:
``<python> <fake_runtime/bootstrap.py>``, or, when the function's environment sets
``AWS_LAMBDA_EXEC_WRAPPER``, ``<wrapper> <python> <fake_runtime/bootstrap.py>`` where a
wrapper under ``/opt/`` is taken from the extracted ``opt/``. The stand-in bootstrap learns
where ``/opt`` is from ``PLLDB_EMULATOR_OPT_DIR`` (nothing in the layer may rely on it).

The process runs in its own process group; :meth:`Container.stop` ends that group by its id
(the runtime and anything the wrapper started), and a watcher thread tells the emulator when
the runtime exits (an invocation in flight then fails with ``Runtime.ExitError``).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.harness.runtime_api import RuntimeApiEmulator

FAKE_RUNTIME_DIR = Path(__file__).resolve().parent / "fake_runtime"
FAKE_BOOTSTRAP = FAKE_RUNTIME_DIR / "bootstrap.py"
OPT_DIR_ENV = "PLLDB_EMULATOR_OPT_DIR"
OPT_PREFIX = "/opt/"
STOP_GRACE_S = 2.0

# Writing a container's files and forking a runtime never overlap in this process: a child
# forked while another thread holds a freshly written wrapper open for writing inherits that
# descriptor until its exec, and exec'ing that wrapper then fails with ETXTBSY ("Text file
# busy"). Popen returns only once its child has exec'd, so holding this lock across it is enough.
FILES_AND_FORKS = threading.Lock()


def extract_layer(data: bytes, opt_dir: Path) -> None:
    """Unzip one layer over ``opt_dir`` keeping Unix file modes (the wrapper must stay
    executable); later layers overwrite earlier ones, as in Lambda."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            target = opt_dir / info.filename
            if not target.resolve().is_relative_to(opt_dir.resolve()):
                raise ValueError(f"layer entry {info.filename!r} escapes the layer folder")
            archive.extract(info, opt_dir)
            mode = info.external_attr >> 16 & 0o7777
            if mode and not info.is_dir():
                target.chmod(mode)


def lambda_environment(
    *,
    runtime_api: str,
    handler: str,
    task_root: Path,
    function_name: str,
    memory_mb: int,
    region: str,
    execution_env: str,
    credentials: Mapping[str, str] | None,
    environment: Mapping[str, str],
) -> dict[str, str]:
    """The environment Lambda gives a Python runtime, then the function's own variables."""
    stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(FAKE_RUNTIME_DIR),
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        # The Runtime API is local to the execution environment: never through an egress
        # proxy (tests/harness/execution_egress.py), whatever HTTP_PROXY says.
        "NO_PROXY": runtime_api,
        "no_proxy": runtime_api,
        "_HANDLER": handler,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": execution_env,
    }
    env.update(credentials or {})
    env.update(environment)
    return env


class Container:
    """One runtime process for one function, bound to its emulator."""

    def __init__(
        self,
        emulator: RuntimeApiEmulator,
        command: list[str],
        env: dict[str, str],
        workdir: Path,
        task_root: Path,
        opt_dir: Path,
        owns_workdir: bool,
        restart: bool,
    ) -> None:
        self.emulator = emulator
        self.command = command
        self.env = env
        self.workdir = workdir
        self.task_root = task_root
        self.opt_dir = opt_dir
        self.log_path = workdir / "runtime.log"
        self.restart = restart
        self.starts = 0
        self._owns_workdir = owns_workdir
        self._process: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._stopped = False
        self._final_logs = ""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Container:
        """Start the runtime process (a cold start); the emulator forgets the previous one."""
        with self._lock:
            self._stopped = False
            generation = self.emulator.runtime_started()
            with self.log_path.open("ab") as log_file, FILES_AND_FORKS:
                self._process = subprocess.Popen(
                    self.command,
                    env=self.env,
                    cwd=self.task_root,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.starts += 1
            threading.Thread(
                target=self._watch,
                args=(self._process, generation),
                daemon=True,
                name=f"container-{self._process.pid}",
            ).start()
            return self

    def ensure_running(self) -> None:
        """Cold-start a runtime if none runs (Lambda starts one for the next invocation)."""
        with self._lock:
            if not self._stopped and not self.is_running():
                self.start()

    def _watch(self, process: subprocess.Popen, generation: int) -> None:
        process.wait()
        self.emulator.runtime_exited(process.returncode, generation)
        with self._lock:
            if (
                self.restart
                and not self._stopped
                and self.emulator.has_queued()
                and process is self._process
            ):
                self.start()

    def kill(self) -> None:
        """End the current runtime process group now (Lambda does so after a timeout); a
        later invocation cold-starts a new one."""
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            _kill_group(process, STOP_GRACE_S)

    def stop(self) -> None:
        """Stop for good: end the process group by its id and remove a temporary workdir."""
        with self._lock:
            self._stopped = True
            self.emulator.before_submit = None
            self.emulator.on_timeout = None
        self.kill()
        if self._owns_workdir:
            self._final_logs = self.logs()
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self) -> str:
        """What the runtime wrote to stdout/stderr (kept after :meth:`stop` too)."""
        if self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return self._final_logs

    def wait(self, timeout: float) -> int:
        assert self._process is not None
        return self._process.wait(timeout)

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_group(process: subprocess.Popen, grace_s: float) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(grace_s)
    except ProcessLookupError:
        pass


def runtime_command(env: Mapping[str, str], opt_dir: Path, python: str) -> list[str]:
    """The runtime's command line, behind the exec wrapper when the function sets one."""
    command = [python, str(FAKE_BOOTSTRAP)]
    wrapper = env.get("AWS_LAMBDA_EXEC_WRAPPER")
    if not wrapper:
        return command
    if wrapper.startswith(OPT_PREFIX):
        wrapper = str(opt_dir / wrapper[len(OPT_PREFIX) :])
    return [wrapper, *command]


def launch(
    emulator: RuntimeApiEmulator,
    code_dir: Path,
    handler: str,
    *,
    layer_zips: Sequence[bytes] = (),
    layer_dirs: Sequence[Path] = (),
    environment: Mapping[str, str] | None = None,
    credentials: Mapping[str, str] | None = None,
    function_name: str | None = None,
    memory_mb: int = 128,
    timeout_s: float | None = None,
    region: str = "us-east-1",
    execution_env: str | None = None,
    python: str = sys.executable,
    workdir: Path | None = None,
    start: bool = True,
    restart: bool = True,
) -> Container:
    """Lay out the task root and /opt of a function and start its runtime against ``emulator``.

    ``layer_dirs`` are copied into /opt before the ``layer_zips`` are extracted. With
    ``restart``, a runtime that ended (timeout, crash) is cold-started again for the next
    invocation. ``timeout_s`` sets the emulator's function timeout when given.
    """
    owns_workdir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="plldb-container-")) if workdir is None else workdir
    task_root, opt_dir = workdir / "task", workdir / "opt"
    with FILES_AND_FORKS:
        shutil.copytree(code_dir, task_root, dirs_exist_ok=True)
        opt_dir.mkdir(parents=True, exist_ok=True)
        for layer_dir in layer_dirs:
            shutil.copytree(layer_dir, opt_dir, dirs_exist_ok=True)
        for data in layer_zips:
            extract_layer(data, opt_dir)
    if timeout_s is not None:
        emulator.timeout_s = timeout_s
    env = lambda_environment(
        runtime_api=emulator.address,
        handler=handler,
        task_root=task_root,
        function_name=function_name or emulator.function_name,
        memory_mb=memory_mb,
        region=region,
        execution_env=execution_env
        or f"AWS_Lambda_python{sys.version_info[0]}.{sys.version_info[1]}",
        credentials=credentials,
        environment=environment or {},
    )
    env[OPT_DIR_ENV] = str(opt_dir)
    container = Container(
        emulator,
        runtime_command(env, opt_dir, python),
        env,
        workdir,
        task_root,
        opt_dir,
        owns_workdir,
        restart,
    )
    emulator.on_timeout = lambda _result: container.kill()
    emulator.before_submit = container.ensure_running
    return container.start() if start else container
