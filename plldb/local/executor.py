"""Run intercepted invocations in this process, one worker thread each.

The WebSocket loop hands every ``invocation`` message to :meth:`Executor.submit`, which
returns at once; the handler runs on its own thread (so a breakpoint pauses only that
invocation, and a function that synchronously invokes another one cannot starve it), in
its function's module namespace (:mod:`plldb.local.isolation`), environment and output
(:mod:`plldb.local.binding`, :mod:`plldb.local.lambda_logging`), through :mod:`plldb.runner` (the same
code that runs handlers in the cloud). The answer, a :class:`plldb.runner.Outcome`, goes to
the ``done`` callback exactly once: the handler's result or error, or a timeout error
shortly before the function's deadline (:func:`answer_deadline`).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plldb import console, runner
from plldb.layer import polling
from plldb.local import (
    binding,
    invocation_hooks,
    isolation,
    lambda_logging,
    public_names,
    redirects,
)
from plldb.local.debuggers import keep_running
from plldb.naming import ENV_EXEC_WRAPPER, SECRET_ENV_VARS, SHIM_ENV_VARS
from plldb.project.model import LocalFunction

log = logging.getLogger(__name__)

CREDENTIALS_FUNCTION = "function"
CREDENTIALS_LOCAL = "local"
CREDENTIAL_MODES = (CREDENTIALS_FUNCTION, CREDENTIALS_LOCAL)
DEFAULT_MAX_WORKERS = 64

EXIT_ERROR = "Runtime.ExitError"
TIMEOUT_ERROR = "Sandbox.Timedout"
UNKNOWN_FUNCTION_ERROR = "PLLDB.UnknownFunction"
BUSY_ERROR = "PLLDB.TooManyInvocations"
CLOSED_ERROR = "PLLDB.ShuttingDown"
BAD_INVOCATION_ERROR = "PLLDB.BadInvocation"

# Meaningful only inside the Lambda container (or to the shim): never shown to local code.
CONTAINER_ONLY_ENV = frozenset(
    {"PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "LAMBDA_RUNTIME_DIR", "AWS_LAMBDA_RUNTIME_API", ENV_EXEC_WRAPPER}
) | frozenset(SHIM_ENV_VARS)
# The developer's way of choosing credentials; hidden when the function's own are used.
PROFILE_ENV = frozenset({"AWS_PROFILE", "AWS_DEFAULT_PROFILE"})

Done = Callable[[str, runner.Outcome], None]


def function_environment(
    local: Mapping[str, str], remote: Mapping[str, str], credentials: str, code_dir: str
) -> dict[str, str]:
    """What ``os.environ`` holds for the function: the developer's environment overlaid with
    the function's cloud environment (minus container-only variables, and minus any that
    would redirect the SDK: :mod:`plldb.local.redirects`), with the credentials chosen by
    ``credentials``, and ``LAMBDA_TASK_ROOT`` pointing at the local code folder."""
    if credentials == CREDENTIALS_FUNCTION:
        hidden_local, hidden_remote = SECRET_ENV_VARS | PROFILE_ENV, CONTAINER_ONLY_ENV
    else:
        hidden_local, hidden_remote = frozenset(), CONTAINER_ONLY_ENV | SECRET_ENV_VARS
    env = {k: v for k, v in local.items() if k not in hidden_local}
    remote = redirects.without_redirects(remote)
    env.update({k: str(v) for k, v in remote.items() if k not in hidden_remote})
    env["LAMBDA_TASK_ROOT"] = code_dir
    return env


class FunctionRuntime:
    """One function's warm state: namespace, environment and loaded handler."""

    def __init__(self, function: LocalFunction) -> None:
        self.function = function
        source_dirs = [p for p in function.import_path if p not in function.package_dirs]
        package_dirs = [*layer_site_packages(function), *function.package_dirs]
        self.namespace = isolation.FunctionNamespace(function.logical_id, source_dirs, package_dirs)
        self.env: dict[str, str] = {}
        self._handler: Callable | None = None
        self.logging: lambda_logging.FunctionLogging | None = None
        self._lock = threading.Lock()
        self.cold_starts = 0

    def stale(self) -> bool:
        """True when the handler is loaded but a source file changed since."""
        return self._handler is not None and self.namespace.changed()

    def handler(self, env: dict[str, str], output: lambda_logging.InvocationOutput) -> Callable:
        """The handler, importing the function's code on first use and after its files
        change (module-level code runs again, with fresh runtime logging, as in a new
        Lambda process). A load failure is logged like the runtime does, and retried next
        time. Called on the thread bound to the function and ``output``."""
        with self._lock:
            if self._handler is not None and not self.namespace.changed():
                output.logging = self.logging
                return self._handler
            self._handler = None
            self.namespace.reset()
            self.cold_starts += 1
            self.logging = output.logging = lambda_logging.FunctionLogging(env, self.logging)
            with output.initialising(), invocation_hooks.loading(self.function):
                try:
                    self._handler = runner.load_handler(self.function.handler, self.namespace.import_module)
                except runner.HandlerLoadError as fault:
                    fault.error = without_plldb_frames(fault.error)
                    output.log_error(fault.error, init=True)
                    missing = getattr(fault.__cause__, "name", None)
                    if isinstance(fault.__cause__, ModuleNotFoundError) and missing:
                        with binding.bound(None, None):  # plldb's own line, not the function's log
                            console.warn(missing_module_hint(self.function, missing))
                    raise
            return self._handler


@dataclass
class _Invocation:
    request_id: str
    done: Done
    answered: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    timer: threading.Timer | None = None

    def answer(self, outcome: runner.Outcome) -> bool:
        with self.lock:
            if self.answered:
                return False
            self.answered = True
        try:
            self.done(self.request_id, outcome)
        except Exception:
            log.exception("answer callback failed for %s", self.request_id)
        return True


class Executor:
    """Runs invocations of the given functions (keyed by physical function name)."""

    def __init__(
        self,
        functions: Mapping[str, LocalFunction],
        credentials: str = CREDENTIALS_FUNCTION,
        max_workers: int = DEFAULT_MAX_WORKERS,
        output: lambda_logging.Output = console.function_output,
    ) -> None:
        if credentials not in CREDENTIAL_MODES:
            raise ValueError(f"credentials must be one of {', '.join(CREDENTIAL_MODES)}, not {credentials!r}")
        isolation.install()
        lambda_logging.install()
        self.output = output
        self.credentials = credentials
        self.max_workers = max_workers
        self.runtimes = {name: FunctionRuntime(function) for name, function in functions.items()}
        self._running: dict[threading.Thread, str] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._saved_cwd = _enter_code_dir(self.runtimes)

    def submit(self, invocation: dict[str, Any], done: Done) -> None:
        """Start a validated ``invocation`` message; never blocks.

        ``done(request_id, outcome)`` is called exactly once, from a worker or timer thread
        (or from this call when the invocation is refused at once). ``event_ref`` must have
        been resolved into ``event`` by the caller.
        """
        call = _Invocation(invocation["request_id"], done)
        runtime = self.runtimes.get(invocation["function_name"])
        refusal = self._refusal(invocation, runtime)
        if refusal is not None:
            call.answer(runner.Outcome.failure(refusal, {}))
            return
        assert runtime is not None
        thread = threading.Thread(
            target=self._work,
            args=(runtime, invocation, call),
            name=f"plldb {runtime.function.logical_id} {call.request_id}",
            daemon=True,
        )
        now = time.time()
        delay = max(0.0, answer_deadline(invocation["deadline_ms"] / 1000, now) - now)
        call.timer = threading.Timer(delay, self._expire, args=(call, runtime))
        call.timer.daemon = True
        keep_running(call.timer)  # plldb's own thread: a debugger never pauses or lists it
        with self._lock:
            self._running[thread] = call.request_id
        call.timer.start()
        thread.start()

    def running(self) -> list[str]:
        """Request ids whose handler is still executing (including timed-out ones)."""
        with self._lock:
            return list(self._running.values())

    def shutdown(self, timeout: float = 0.0) -> list[str]:
        """Refuse new invocations, wait up to ``timeout`` seconds for running handlers, then
        give back the working directory and the Lambda module names (``sys.modules["app"]``).

        Handler threads cannot be stopped (one may be paused in the debugger): the request
        ids still running are returned; they are daemon threads and end with the process.
        """
        self._closed = True
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._running)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._saved_cwd is not None:
            os.chdir(self._saved_cwd)
            self._saved_cwd = None
        public_names.unlist_all()
        return self.running()

    def _refusal(self, invocation: dict[str, Any], runtime: FunctionRuntime | None) -> dict | None:
        request_id = invocation["request_id"]
        if self._closed:
            return _error(CLOSED_ERROR, "plldb is shutting down and runs no more invocations", request_id)
        if runtime is None:
            return _error(
                UNKNOWN_FUNCTION_ERROR,
                f"function {invocation['function_name']} is not mapped to local code in this plldb session",
                request_id,
            )
        if not isinstance(invocation.get("event"), str):
            return _error(BAD_INVOCATION_ERROR, "invocation without an inline 'event'", request_id)
        if len(self._running) >= self.max_workers:
            return _error(
                BUSY_ERROR,
                f"{len(self._running)} handlers are already running in plldb (limit {self.max_workers})",
                request_id,
            )
        return None

    def _work(self, runtime: FunctionRuntime, invocation: dict[str, Any], call: _Invocation) -> None:
        try:
            outcome = self._run(runtime, invocation)
        finally:
            with self._lock:
                self._running.pop(threading.current_thread(), None)
        if call.timer is not None:
            call.timer.cancel()
        if not call.answer(outcome):
            # The timeout error already went out (and was shown); this is only for diagnosis.
            log.info("%s: handler finished after the timeout error was sent; result discarded", call.request_id)

    def _run(self, runtime: FunctionRuntime, invocation: dict[str, Any]) -> runner.Outcome:
        request_id = invocation["request_id"]
        fresh = function_environment(
            binding.process_environment(), invocation["environment"], self.credentials, str(runtime.function.code_dir)
        )
        runtime.env.update(fresh)
        env = runtime.env
        runner.set_trace_id(invocation.get("trace_id"), env)
        if runtime.stale():  # logged here: on the bound thread, logging is the function's
            log.info("%s: source changed, reloading", runtime.function.logical_id)
        output = lambda_logging.InvocationOutput(
            runtime.function.logical_id, request_id, invocation.get("tenant_id"), self.output
        )
        lambda_logging.ensure_streams()
        with binding.bound(env, runtime.namespace, output):
            try:
                with invocation_hooks.running(runtime.function, invocation):
                    outcome = self._call(runtime, invocation, env, output)
                outcome = _without_plldb_frames(outcome, env)
                if not outcome.ok and not outcome.init_error and outcome.error_type != EXIT_ERROR:
                    output.log_error(outcome.error or {}, init=False)
                return outcome
            finally:
                output.flush()

    def _call(
        self, runtime: FunctionRuntime, invocation: dict[str, Any], env: dict[str, str],
        output: lambda_logging.InvocationOutput,
    ) -> runner.Outcome:
        """Load (if needed) and call the handler, as the runtime would; every failure of user
        code becomes an outcome."""
        request_id = invocation["request_id"]
        try:
            handler = runtime.handler(env, output)
            context = runner.build_context(
                request_id,
                invocation["deadline_ms"],
                invocation["invoked_function_arn"],
                invocation.get("client_context"),
                invocation.get("cognito_identity"),
                env,
                invocation.get("tenant_id"),
            )
            return runner.run_handler(handler, invocation["event"], context, environ=env)
        except runner.HandlerLoadError as fault:
            return runner.Outcome.failure(fault.error, env, init_error=True)
        except runner.RuntimeFault as fault:
            return runner.Outcome.failure({**fault.error, "requestId": request_id}, env)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt & co raised by user code
            return runner.Outcome.failure(_exit_error(exc, request_id), env)

    def _expire(self, call: _Invocation, runtime: FunctionRuntime) -> None:
        message = (
            f"RequestId: {call.request_id} Error: Task timed out: the handler of "
            f"{runtime.function.logical_id} was still running in plldb when the function's time was up "
            "(it goes on in the background; its result will be discarded)"
        )
        # The invocation line printed for this answer is the one the user sees.
        if call.answer(runner.Outcome.failure(_error(TIMEOUT_ERROR, message, call.request_id), {})):
            log.info("%s: time up, timeout error sent", call.request_id)


def _enter_code_dir(runtimes: Mapping[str, FunctionRuntime]) -> str | None:
    """With one function, make its code folder the working directory (as the task root is in
    Lambda, so ``open("data.txt")`` works); returns the folder to go back to. With several,
    the working directory is the process's and cannot follow each function: it stays where
    plldb was started."""
    if len(runtimes) != 1:
        return None
    saved = os.getcwd()
    os.chdir(next(iter(runtimes.values())).function.code_dir)
    return saved


def layer_site_packages(function: LocalFunction) -> list[Path]:
    """``lib/python3.X/site-packages`` folders in the function's folders (layers laid out the
    way pip installs them; Lambda searches them like ``/opt/python``). 3.X is the template's
    runtime, else the running interpreter's."""
    version = function.runtime.removeprefix("python") if function.runtime.startswith("python3.") else None
    versions = [v for v in (version, f"{sys.version_info[0]}.{sys.version_info[1]}") if v]
    found = []
    for folder in function.import_path:
        for candidate in versions:
            site = Path(folder) / "lib" / f"python{candidate}" / "site-packages"
            if site.is_dir():
                found.append(site)
                break
    return found


def missing_module_hint(function: LocalFunction, module: str) -> str:
    """Where plldb looked for a module the handler's code imports, and how to get it there
    (the error itself stays the runtime's)."""
    looked = ", ".join(str(p) for p in function.import_path)  # whole: the working folder is the code's
    install = (f"install the dependencies with {function.build_hint}" if function.build_hint else
               "install it into the code folder or a layer (pip install -r requirements.txt -t FOLDER)")
    return (f"{function.logical_id}: no module named '{module}' in {looked} or plldb's own Python; "
            f"{install}, or pip install it where plldb runs")


def answer_deadline(deadline: float, now: float) -> float:
    """When plldb answers a handler that is still running with a timeout error (epoch seconds).

    The shim stops waiting ``polling.deadline_margin`` before the function's deadline and then
    refuses late answers. plldb answers one more margin earlier, so its own timeout error
    still reaches the shim (and the user sees that one error, not the shim's as well).
    """
    return deadline - 2 * polling.deadline_margin(deadline - now)


_ISOLATION_FRAME = f'  File "{isolation.__file__}"'


def without_plldb_frames(error: dict[str, Any]) -> dict[str, Any]:
    """``error`` with plldb's import hook frames taken out of its stack trace: in Lambda, an
    import goes straight from the user's line to the imported module."""
    trace = error.get("stackTrace") or []
    if not any(line.startswith(_ISOLATION_FRAME) for line in trace):
        return error
    return {**error, "stackTrace": [line for line in trace if not line.startswith(_ISOLATION_FRAME)]}


def _without_plldb_frames(outcome: runner.Outcome, env: dict[str, str]) -> runner.Outcome:
    error = outcome.error
    if error is None or without_plldb_frames(error) is error:
        return outcome
    return runner.Outcome.failure(without_plldb_frames(error), env, init_error=outcome.init_error)


def _error(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return runner.make_error(message, error_type, [], request_id)


def _exit_error(exc: BaseException, request_id: str) -> dict[str, Any]:
    """What Lambda reports when user code ends the runtime process; plldb survives it."""
    if isinstance(exc, SystemExit):
        code = exc.code
        status = 0 if code is None else code if isinstance(code, int) else 1
        reason = f"exit status {status} (the handler called sys.exit({code!r}); plldb keeps running)"
    else:
        reason = f"{type(exc).__name__} raised by the handler (plldb keeps running)"
    error = runner.error_from_exception(exc, request_id)
    error["errorType"] = EXIT_ERROR
    error["errorMessage"] = f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
    return error
