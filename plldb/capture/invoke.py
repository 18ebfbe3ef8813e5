"""`plldb invoke`: run one function of the local template here, once (the command-line simulator).

No helper stack, no deployed stack, no AWS call: the invocation message that attach would
receive from the shim is built here (event, context fields, the template's environment) and
handed to the same :class:`plldb.local.executor.Executor`, so the function runs with the same
isolation, context, logging and error format as under attach. :mod:`plldb.capture.replay` uses
:func:`run_invocation` too, with the fields of a captured invocation.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plldb import console, runner
from plldb.local import debuggers, lambda_logging
from plldb.local.executor import CREDENTIALS_FUNCTION, CREDENTIALS_LOCAL, Executor
from plldb.project.discovery import discover
from plldb.project.model import LocalFunction

CREDENTIALS_NONE = "none"
INVOKE_CREDENTIALS = (CREDENTIALS_LOCAL, CREDENTIALS_NONE)
DEFAULT_TIMEOUT_SECONDS = 3  # Lambda's default when the template sets none
DEBUGGER_TIMEOUT_SECONDS = 900  # under a debugger, time to look around at a breakpoint
LOCAL_ACCOUNT = "123456789012"
LOCAL_REGION = "us-east-1"
# With --credentials none, boto3 in the handler finds nothing: no variables, no files, no IMDS.
NO_CREDENTIALS_ENV = {
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class InvokeError(Exception):
    """Bad input to invoke or replay (unknown function, unreadable or malformed event)."""


@dataclass
class InvocationFields:
    """What the shim would send for one invocation, minus the function name."""

    event: str
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline_left_ms: int | None = None  # None: the function's timeout
    invoked_function_arn: str | None = None  # None: a local ARN from the function's name
    client_context: str | None = None
    cognito_identity: str | None = None
    tenant_id: str | None = None
    environment: dict[str, str] = field(default_factory=dict)  # over the template's


def find_function(template: Path, logical_id: str, warn: Callable[[str], None] | None = None, *,
                  stage: str | None = None, cdk_out: Path | None = None) -> LocalFunction:
    """The function ``logical_id`` of ``template``, or an error listing the ones there are;
    ``warn`` gets what discovery warns about (as attach shows it: a build copy run, a Python
    version other than the template's). ``stage`` and ``cdk_out`` are attach's --stage
    (Serverless) and --cdk-out (CDK)."""
    discovery = discover(template, stage=stage, cdk_out=cdk_out)
    function = discovery.functions.get(logical_id)
    if function is not None:
        for warning in discovery.warnings if warn else ():
            warn(warning)
        return function
    why = discovery.skipped.get(logical_id)
    if why:
        raise InvokeError(f"function {logical_id} of {template} cannot run locally: {why}")
    known = ", ".join(sorted(discovery.functions)) or "none"
    raise InvokeError(
        f"no function {logical_id!r} in {template} (Python functions there: {known}): "
        "give a logical id from the template, or pass --template"
    )


def read_event(source: str | None) -> str:
    """The event text from ``--event``: a file, ``-`` for stdin, or JSON text; ``{}`` if absent.

    It must be JSON, as every event Lambda delivers is; a mistake is reported here, before
    any code runs.
    """
    if source is None:
        return "{}"
    if source == "-":
        text, where = sys.stdin.read(), "stdin"
    elif source.lstrip()[:1] in ("{", "[", '"') or source.strip() in ("null", "true", "false"):
        text, where = source, "--event"
    else:
        path = Path(source)
        if not path.is_file():
            raise InvokeError(
                f"--event {source}: no such file, and not JSON text: pass a JSON file, - for "
                "stdin, or JSON text such as '{\"key\": 1}'"
            )
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvokeError(f"the event in {where} is not valid JSON: {exc}") from exc
    return text


def local_arn(function: LocalFunction) -> str:
    """The ARN a context shows when none was captured: the function's name in a local account."""
    name = function.physical_name or function.logical_id.replace("/", "-")
    return f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{name}"


def template_environment(function: LocalFunction) -> dict[str, str]:
    """The template's variables that have a value here (a !Ref to a resource has none)."""
    return {k: str(v) for k, v in function.environment.items() if isinstance(v, (str, int, float, bool))}


def build_invocation(function: LocalFunction, fields: InvocationFields, credentials: str,
                     timeout: int | None) -> dict[str, Any]:
    """The invocation message for the executor (the shape the shim sends attach)."""
    seconds = timeout or function.timeout or DEFAULT_TIMEOUT_SECONDS
    left_ms = fields.deadline_left_ms if fields.deadline_left_ms and not timeout else seconds * 1000
    environment = {**template_environment(function), **fields.environment}
    if credentials == CREDENTIALS_NONE:
        environment.update(NO_CREDENTIALS_ENV)
    return {
        "request_id": fields.request_id,
        "function_name": function.logical_id,
        "event": fields.event,
        "deadline_ms": int(time.time() * 1000) + int(left_ms),
        "invoked_function_arn": fields.invoked_function_arn or local_arn(function),
        "client_context": fields.client_context,
        "cognito_identity": fields.cognito_identity,
        "tenant_id": fields.tenant_id,
        "environment": environment,
    }


def time_allowed(timeout: int | None, debugging: bool) -> int | None:
    """--timeout, else 900 s under a debugger (time to look around at a breakpoint), else
    None: the function's own (or, in a replay, the time it had left when captured)."""
    return timeout or (DEBUGGER_TIMEOUT_SECONDS if debugging else None)


def function_output_stderr(function: str, line: str) -> None:
    """The handler's output, on stderr: stdout carries only the result."""
    console.function_output(function, line, stderr=True)


def run_invocation(function: LocalFunction, fields: InvocationFields, credentials: str = CREDENTIALS_LOCAL,
                   timeout: int | None = None,
                   output: lambda_logging.Output = function_output_stderr) -> tuple[runner.Outcome, float]:
    """Run one invocation through the executor; returns the outcome and its duration (s).

    ``credentials`` ``local`` gives the handler your profile's credentials, ``none`` none at
    all (the executor's "function" mode without any function credentials to add).
    """
    if credentials not in INVOKE_CREDENTIALS:
        raise InvokeError(f"--credentials must be one of {', '.join(INVOKE_CREDENTIALS)}, not {credentials!r}")
    mode = CREDENTIALS_LOCAL if credentials == CREDENTIALS_LOCAL else CREDENTIALS_FUNCTION
    invocation = build_invocation(function, fields, credentials, timeout)
    executor = Executor({function.logical_id: function}, credentials=mode, max_workers=1, output=output)
    answered = threading.Event()
    outcomes: list[runner.Outcome] = []

    def done(_request_id: str, outcome: runner.Outcome) -> None:
        outcomes.append(outcome)
        answered.set()

    started = time.monotonic()
    try:
        executor.submit(invocation, done)
        answered.wait()
    finally:
        executor.shutdown()
    return outcomes[0], time.monotonic() - started


def start_debugger(options: debuggers.DebugpyOptions | None) -> None:
    """debugpy listening before the function's code is imported (so breakpoints bind), and,
    with --wait-for-client, a client attached before it runs."""
    debuggers.keep_main_thread_running()
    if options is None:
        return
    debuggers.start_debugpy(options)
    console.err().print(f"debugpy listening on {options.host}:{options.port}")
    if options.wait_for_client:
        console.err().print("waiting for a debugger to attach (--wait-for-client)")
        debuggers.client_gate(options).wait()


def outcome_text(outcome: runner.Outcome) -> str:
    """What the caller of the function gets: the result, or the error JSON."""
    return outcome.body.decode(errors="replace")
