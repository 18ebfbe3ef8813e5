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
from plldb.capture.deployed import NotDeployed
from plldb.capture.lambda_environment import (
    DEFAULT_REGION,
    Deployed,
    Region,
    dropped_warning,
    function_arn,
    reserved_variables,
    template_variables,
)
from plldb.local import debuggers, lambda_logging
from plldb.local.executor import CREDENTIALS_FUNCTION, CREDENTIALS_LOCAL, Executor
from plldb.project.discovery import discover
from plldb.project.model import Discovery, LocalFunction
from plldb.project.names import FunctionNotFound, function_named, project_description

CREDENTIALS_NONE = "none"
INVOKE_CREDENTIALS = (CREDENTIALS_LOCAL, CREDENTIALS_NONE)
DEFAULT_TIMEOUT_SECONDS = 3  # Lambda's default when the template sets none
DEBUGGER_TIMEOUT_SECONDS = 900  # under a debugger, time to look around at a breakpoint
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


def find_function(template: Path, name: str, warn: Callable[[str], None] | None = None, *,
                  stage: str | None = None, cdk_out: Path | None = None,
                  stack_name: str | None = None) -> LocalFunction:
    """The function ``name`` of the project (its logical id, physical name, serverless.yml key
    or CDK construct path or id), or an error listing the ones there are; ``warn`` gets what
    discovery warns about (as attach shows it). ``stage``, ``cdk_out`` and ``stack_name`` are
    attach's --stage (Serverless), --cdk-out and --stack-name (which CDK stack)."""
    return find_in_project(template, name, warn, stage=stage, cdk_out=cdk_out, stack_name=stack_name)[0]


def find_in_project(template: Path, name: str, warn: Callable[[str], None] | None = None, *,
                    stage: str | None = None, cdk_out: Path | None = None,
                    stack_name: str | None = None) -> tuple[LocalFunction, Discovery]:
    """:func:`find_function`, with the project read (for its stack name)."""
    discovery = discover(template, stage=stage, cdk_out=cdk_out, stack_name=stack_name)
    try:
        logical_id = function_named(discovery, name)
    except FunctionNotFound as exc:
        raise InvokeError(str(exc)) from None
    function = discovery.functions.get(logical_id)
    if function is not None:
        for warning in discovery.warnings if warn else ():
            warn(warning)
        return function, discovery
    raise InvokeError(
        f"function {logical_id} of {project_description(discovery)} cannot run locally: "
        f"{discovery.skipped[logical_id]}"
    )


@dataclass
class RunSetting:
    """Where the function is told it runs: the region, and the deployed function when read."""

    region: Region = field(default_factory=lambda: Region(DEFAULT_REGION))
    deployed: Deployed | None = None


def run_setting(function: LocalFunction, region: Region, stack_name: str | None, explicit: bool,
                reader: Callable[[str, str], Deployed], warn: Callable[[str], None]) -> RunSetting:
    """The region, and the deployed function when it is worth reading: when --stack-name was
    given (``explicit``), or when template variables need the deployed stack. What cannot be
    known is warned about: the region guessed, the variables dropped."""
    if region.note:
        warn(region.note)
    _, dropped = template_variables(function)
    deployed, why = None, None
    if stack_name and (explicit or dropped):
        try:
            deployed = reader(stack_name, function.logical_id)
        except NotDeployed as exc:
            why = str(exc)
            if explicit and not dropped:
                warn(f"{function.logical_id}: the deployed function was not read ({why}): running with "
                     "the template's values")
    still = template_variables(function, deployed)[1]
    if still:
        warn(dropped_warning(function, still, why if stack_name else "no stack name: pass --stack-name"))
    return RunSetting(region, deployed)


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


def build_invocation(function: LocalFunction, fields: InvocationFields, credentials: str,
                     timeout: int | None, setting: RunSetting | None = None) -> dict[str, Any]:
    """The invocation message for the executor (the shape the shim sends attach), with what
    Lambda sets: the function's variables, the reserved ones, the context's fields."""
    setting = setting or RunSetting()
    region = setting.region.name
    seconds = timeout or function.timeout or DEFAULT_TIMEOUT_SECONDS
    left_ms = fields.deadline_left_ms if fields.deadline_left_ms and not timeout else seconds * 1000
    variables, _ = template_variables(function, setting.deployed)
    environment = {**variables, **reserved_variables(function, region, setting.deployed), **fields.environment}
    if credentials == CREDENTIALS_NONE:
        environment.update(NO_CREDENTIALS_ENV)
    return {
        "request_id": fields.request_id,
        "function_name": function.logical_id,
        "event": fields.event,
        "deadline_ms": int(time.time() * 1000) + int(left_ms),
        "invoked_function_arn": fields.invoked_function_arn or function_arn(function, region, setting.deployed),
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
                   output: lambda_logging.Output = function_output_stderr,
                   setting: RunSetting | None = None) -> tuple[runner.Outcome, float]:
    """Run one invocation through the executor; returns the outcome and its duration (s).

    ``credentials`` ``local`` gives the handler your profile's credentials, ``none`` none at
    all (the executor's "function" mode without any function credentials to add).
    """
    if credentials not in INVOKE_CREDENTIALS:
        raise InvokeError(f"--credentials must be one of {', '.join(INVOKE_CREDENTIALS)}, not {credentials!r}")
    mode = CREDENTIALS_LOCAL if credentials == CREDENTIALS_LOCAL else CREDENTIALS_FUNCTION
    invocation = build_invocation(function, fields, credentials, timeout, setting)
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
