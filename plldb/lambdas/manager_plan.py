"""The manager's decisions, made before anything changes: what to do with each function.

Pure functions over a function's configuration and its instrumentation record, so every
rule (skip reasons, the configuration to apply, what "restored" means) is decided in one
place and can be read without the AWS plumbing around it.

A "subset" is the part of a function configuration plldb changes:
``{"Environment": {name: value}, "Layers": [arn, ...], "Timeout": seconds}``.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from plldb import protocol
from plldb.lambdas import common

# Outcome statuses, reported as the ``status`` of a progress message.
OK = "ok"
SKIPPED = "skipped"
FAILED = "failed"
WARNING = "warning"  # instrumented, with something the developer must know
KEPT_DEPLOY = "kept-deploy"  # changed by a deploy while instrumented: plldb traces removed only
GONE = "gone"  # the function no longer exists


@dataclass
class Outcome:
    function: str
    status: str
    message: str


@dataclass
class Plan:
    """What instrumenting one function will do, decided before anything changes."""

    name: str
    arn: str
    role_name: str
    original: dict[str, Any]
    applied: dict[str, Any]
    record: dict[str, Any] | None  # the existing instrumentation record, if any
    current: dict[str, Any] | None = None  # the configuration now, to skip a no-op update
    grant_added: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Surroundings:
    """What else decides whether a function can be debugged: who reaches it, and how.

    ``aliases``: (alias name, version it points to); ``queues``: (SQS queue name, its
    visibility timeout in seconds, or None when it could not be read) of the function's
    event source mappings.
    """

    aliases: tuple[tuple[str, str], ...] = ()
    queues: tuple[tuple[str, int | None], ...] = ()


def config_subset(configuration: dict[str, Any]) -> dict[str, Any]:
    return {
        "Environment": dict(configuration.get("Environment", {}).get("Variables", {})),
        "Layers": [layer["Arn"] for layer in configuration.get("Layers", [])],
        "Timeout": configuration["Timeout"],
    }


def is_plldb_layer(arn: str) -> bool:
    """Any version of the plldb layer (a bootstrap upgrade publishes a new version)."""
    parts = arn.split(":")
    return len(parts) >= 7 and parts[5] == "layer" and parts[6] == protocol.LAYER_NAME


def has_traces(subset: dict[str, Any]) -> bool:
    env = subset["Environment"]
    return (
        any(is_plldb_layer(arn) for arn in subset["Layers"])
        or any(name in env for name in protocol.SHIM_ENV_VARS)
        or env.get(protocol.ENV_EXEC_WRAPPER) == protocol.WRAPPER_PATH
    )


def strip_traces(subset: dict[str, Any]) -> dict[str, Any]:
    """The subset without anything plldb added; the chained exec wrapper is put back."""
    env = {k: v for k, v in subset["Environment"].items() if k not in protocol.SHIM_ENV_VARS}
    if env.get(protocol.ENV_EXEC_WRAPPER) == protocol.WRAPPER_PATH:
        original_wrapper = subset["Environment"].get(protocol.ENV_ORIGINAL_WRAPPER)
        if original_wrapper:
            env[protocol.ENV_EXEC_WRAPPER] = original_wrapper
        else:
            del env[protocol.ENV_EXEC_WRAPPER]
    layers = [arn for arn in subset["Layers"] if not is_plldb_layer(arn)]
    return {"Environment": env, "Layers": layers, "Timeout": subset["Timeout"]}


def environment_size(variables: dict[str, str]) -> int:
    """Lambda's 4 KB limit counts the bytes of every name and value."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())


def matches(filters: list[str], *names: str) -> bool:
    return not filters or any(fnmatch.fnmatchcase(n, f) for f in filters for n in names)


def unsupported(
    configuration: dict[str, Any], surroundings: Surroundings = Surroundings()
) -> str | None:
    """Why this function cannot be debugged (with what the user can do), or None."""
    if configuration.get("PackageType") == "Image":
        return "container image function: layers cannot be added to it"
    runtime = configuration.get("Runtime") or ""
    if not runtime.startswith("python"):
        return f"runtime {runtime or 'unknown'} is not Python"
    key = configuration.get("KMSKeyArn")
    if key:
        return (
            f"its environment is encrypted with the customer managed KMS key {key}, which the "
            "plldb manager may not use: debug it without KmsKeyArn (AWS's default key), or "
            "debug another function"
        )
    published = [(alias, version) for alias, version in surroundings.aliases if version != "$LATEST"]
    if published:
        names = ", ".join(f"{alias} (version {version})" for alias, version in published)
        return (
            f"reached through alias {names}: plldb instruments $LATEST only, so that "
            "traffic would never reach this machine; debug it with the alias on $LATEST "
            "(e.g. deploy without AutoPublishAlias while debugging) or invoke $LATEST"
        )
    return None


def queue_warnings(surroundings: Surroundings, timeout: int) -> list[str]:
    """One warning per SQS queue whose messages come back while an invocation is held."""
    warnings = []
    for queue, visibility in surroundings.queues:
        if visibility is None:
            warnings.append(
                f"SQS queue {queue} feeds it, and its visibility timeout could not be read: "
                f"if it is not above the debug timeout of {timeout} s, its messages are "
                "delivered again while you are on a breakpoint (see --timeout)"
            )
        elif visibility <= timeout:
            warnings.append(
                f"SQS queue {queue} has a visibility timeout of {visibility} s, not above the "
                f"debug timeout of {timeout} s: its messages are delivered again while you are "
                f"on a breakpoint; attach with --timeout {max(1, visibility - 1)} to stay below it"
            )
    return warnings


def original_of(current: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    """The configuration to restore: the record's, unless a deploy replaced the function.

    With no record, or when a deploy replaced the function since the record was made, what
    runs now, without any plldb trace, is what must come back.
    """
    if record and (
        has_traces(current) or current == json.loads(record[protocol.A_ORIGINAL]["S"])
    ):
        return json.loads(record[protocol.A_ORIGINAL]["S"])
    return strip_traces(current)


def applied(
    original: dict[str, Any], config: common.Config, session_id: str, timeout: int
) -> dict[str, Any]:
    """The configuration while attached: the layer, the shim's variables, ``timeout``.

    The timeout is exactly what the session asked for (``--timeout``), lower than the
    function's own or higher: a developer may want a short one to see the timeout path.
    """
    env = dict(original["Environment"])
    if protocol.ENV_EXEC_WRAPPER in env:
        env[protocol.ENV_ORIGINAL_WRAPPER] = env[protocol.ENV_EXEC_WRAPPER]
    env.update(
        {
            protocol.ENV_EXEC_WRAPPER: protocol.WRAPPER_PATH,
            protocol.ENV_SESSION_ID: session_id,
            protocol.ENV_SESSIONS_TABLE: config.sessions_table,
            protocol.ENV_DEBUGGER_TABLE: config.debugger_table,
            protocol.ENV_MANAGEMENT_URL: config.management_url,
            protocol.ENV_PAYLOAD_BUCKET: config.payload_bucket,
            protocol.ENV_GRACE_SECONDS: f"{config.grace_seconds:g}",
        }
    )
    return {
        "Environment": env,
        "Layers": [*original["Layers"], config.layer_arn],
        "Timeout": timeout,
    }


def plan(
    name: str,
    configuration: dict[str, Any],
    record: dict[str, Any] | None,
    config: common.Config,
    session_id: str,
    timeout: int,
    surroundings: Surroundings = Surroundings(),
) -> Plan | Outcome:
    """Decide what to do with one function; an Outcome when it is skipped."""
    reason = unsupported(configuration, surroundings)
    if reason:
        return Outcome(name, SKIPPED, reason)
    current = config_subset(configuration)
    original = original_of(current, record)
    if len(original["Layers"]) >= protocol.MAX_LAYERS:
        return Outcome(
            name,
            SKIPPED,
            f"already has {len(original['Layers'])} layers, the maximum is "
            f"{protocol.MAX_LAYERS}: no room for the plldb layer",
        )
    target = applied(original, config, session_id, timeout)
    size = environment_size(target["Environment"])
    if size > protocol.ENV_LIMIT:
        return Outcome(
            name,
            SKIPPED,
            f"environment would be {size} bytes with the plldb variables, over the "
            f"{protocol.ENV_LIMIT} byte limit",
        )
    return Plan(
        name=name,
        arn=configuration["FunctionArn"],
        role_name=configuration["Role"].rsplit("/", 1)[-1],
        original=original,
        applied=target,
        record=record,
        current=current,
        warnings=queue_warnings(surroundings, timeout),
    )
