"""The manager's decisions, made before anything changes: what to do with each function.

Pure functions over a function's configuration, so every rule (skip reasons, the
configuration to apply, what restoring changes) is decided in one place and can be read
without the AWS plumbing around it. None of them reads a configuration from the sessions
table: what restoring needs (the function's own timeout and exec wrapper) is recorded in the
function's own environment, which only a principal allowed to update the function can
change (docs/security.md, promise 3).

A "subset" is the part of a function configuration plldb changes:
``{"Environment": {name: value}, "Layers": [arn, ...], "Timeout": seconds}``.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any

from plldb import limits, naming
from plldb.lambdas import common
from plldb.lambdas.manager import features

# Outcome statuses, reported as the ``status`` of a progress message.
OK = "ok"
SKIPPED = "skipped"
FAILED = "failed"
WARNING = "warning"  # instrumented or restored, with something the developer must know
KEPT_DEPLOY = "kept-deploy"  # changed by a deploy while instrumented: its changes are kept
GONE = "gone"  # the function no longer exists

# The variables plldb sets on every function it instruments (besides the exec wrapper).
SET_WHEN_INSTRUMENTING = (
    naming.ENV_SESSION_ID,
    naming.ENV_SESSIONS_TABLE,
    naming.ENV_DEBUGGER_TABLE,
    naming.ENV_MANAGEMENT_URL,
    naming.ENV_PAYLOAD_BUCKET,
    naming.ENV_GRACE_SECONDS,
)


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
    event source mappings; ``unusable_layers``: (ARN, why) of its own layer versions that
    Lambda would refuse in an update (deleted ones).
    """

    aliases: tuple[tuple[str, str], ...] = ()
    queues: tuple[tuple[str, int | None], ...] = ()
    unusable_layers: tuple[tuple[str, str], ...] = ()


def config_subset(configuration: dict[str, Any]) -> dict[str, Any]:
    return {
        "Environment": dict(configuration.get("Environment", {}).get("Variables", {})),
        "Layers": [layer["Arn"] for layer in configuration.get("Layers", [])],
        "Timeout": configuration["Timeout"],
    }


def is_plldb_layer(arn: str) -> bool:
    """Any version of the plldb layer (a bootstrap upgrade publishes a new version)."""
    parts = arn.split(":")
    return len(parts) >= 7 and parts[5] == "layer" and parts[6] == naming.LAYER_NAME


def has_traces(subset: dict[str, Any]) -> bool:
    env = subset["Environment"]
    return (
        any(is_plldb_layer(arn) for arn in subset["Layers"])
        or any(name in env for name in naming.SHIM_ENV_VARS)
        or env.get(naming.ENV_EXEC_WRAPPER) == naming.WRAPPER_PATH
    )


def has_all_traces(subset: dict[str, Any]) -> bool:
    """Everything plldb sets is still there: nobody replaced its environment or layers."""
    env = subset["Environment"]
    return (
        any(is_plldb_layer(arn) for arn in subset["Layers"])
        and env.get(naming.ENV_EXEC_WRAPPER) == naming.WRAPPER_PATH
        and all(name in env for name in SET_WHEN_INSTRUMENTING)
    )


def recorded_timeout(env: dict[str, str]) -> int | None:
    """The function's own timeout as plldb recorded it; None unless 1..MAX_TIMEOUT seconds.

    Anyone allowed to update the function may have changed the variable: anything but a
    plain number of seconds Lambda accepts is not applied.
    """
    value = env.get(naming.ENV_ORIGINAL_TIMEOUT, "")
    if not re.fullmatch(r"[0-9]{1,4}", value):
        return None
    seconds = int(value)
    return seconds if 1 <= seconds <= limits.MAX_TIMEOUT else None


def own_timeout(subset: dict[str, Any]) -> int | None:
    """The function's own timeout: the current one, or plldb's record of it while instrumented."""
    if not has_traces(subset):
        return subset["Timeout"]
    return recorded_timeout(subset["Environment"])


def strip_traces(subset: dict[str, Any]) -> dict[str, Any]:
    """The subset without anything plldb added; the chained exec wrapper is put back.

    The timeout goes back to the recorded one; without a valid record it stays as it is.
    """
    env = {k: v for k, v in subset["Environment"].items() if k not in naming.SHIM_ENV_VARS}
    if env.get(naming.ENV_EXEC_WRAPPER) == naming.WRAPPER_PATH:
        original_wrapper = subset["Environment"].get(naming.ENV_ORIGINAL_WRAPPER)
        if original_wrapper:
            env[naming.ENV_EXEC_WRAPPER] = original_wrapper
        else:
            del env[naming.ENV_EXEC_WRAPPER]
    layers = [arn for arn in subset["Layers"] if not is_plldb_layer(arn)]
    timeout = own_timeout(subset)
    return {"Environment": env, "Layers": layers, "Timeout": timeout or subset["Timeout"]}


def restoration(
    name: str, current: dict[str, Any], instrumented: bool
) -> tuple[dict[str, Any] | None, Outcome]:
    """What restoring one function sets (None: nothing), decided from its current configuration.

    Only plldb's traces go: the layer, the shim's variables, the exec wrapper (a chained one
    comes back) and the debug timeout (the recorded one comes back). Everything else a
    deploy or an edit changed meanwhile stays. ``instrumented``: the record says the update
    was made (otherwise a crash came before it, and no trace is expected).
    """
    if not has_traces(current):
        if not instrumented:
            return None, Outcome(name, OK, "restored: plldb had not changed it yet")
        return None, Outcome(
            name,
            KEPT_DEPLOY,
            "replaced since it was instrumented (a deploy?): no plldb trace left, kept as deployed",
        )
    target = strip_traces(current)
    timeout_kept = own_timeout(current) is None
    note = ""
    if timeout_kept:
        value = current["Environment"].get(naming.ENV_ORIGINAL_TIMEOUT)
        bounds = f"is not 1 to {limits.MAX_TIMEOUT} s"
        why = "is missing" if value is None else f"{value[:40]!r} {bounds}"
        note = f"; timeout left at {current['Timeout']} s: {naming.ENV_ORIGINAL_TIMEOUT} {why}"
    if not has_all_traces(current):
        return target, Outcome(
            name,
            KEPT_DEPLOY,
            "changed since it was instrumented (a deploy?): kept as deployed, plldb's "
            f"remaining layer and variables removed{note}",
        )
    if timeout_kept:
        return target, Outcome(name, WARNING, f"restored{note}")
    return target, Outcome(name, OK, f"restored (timeout {target['Timeout']} s)")


def environment_size(variables: dict[str, str]) -> int:
    """The size Lambda holds to 4 KB: the variables as JSON text, quotes, separators and
    escapes included (``{"NAME":"value",...}``), not only names and values.

    Non-ASCII characters are counted as JSON's ``\\uXXXX`` escapes, the larger reading: a
    function near the limit is skipped rather than failing at update.
    """
    return len(json.dumps(variables, separators=(",", ":")))


def matches(filters: list[str], *names: str) -> bool:
    return not filters or any(fnmatch.fnmatchcase(n, f) for f in filters for n in names)


def unsupported(
    configuration: dict[str, Any],
    surroundings: Surroundings = Surroundings(),
    today: datetime.date | None = None,
) -> str | None:
    """Why this function cannot be debugged (with what the user can do), or None.

    ``today`` decides which deprecated runtimes AWS blocks (default: today, in UTC).
    """
    if configuration.get("PackageType") == "Image":
        return "container image function: layers cannot be added to it"
    runtime = configuration.get("Runtime") or ""
    if features.python_version(runtime) is None:
        return f"runtime {runtime or 'unknown'} is not Python"
    reason = (
        features.blocked_runtime(runtime, today or utc_today())
        or features.managed_instances(configuration)
        or features.durable(configuration)
    )
    if reason:
        return reason
    key = configuration.get("KMSKeyArn")
    if key:
        return (
            f"its environment is encrypted with the customer managed KMS key {key}, which the "
            "plldb manager may not use: debug it without KmsKeyArn (AWS's default key), or "
            "debug another function"
        )
    if surroundings.unusable_layers:
        return layers_refused(surroundings.unusable_layers) + ", then attach again"
    published = [(alias, version) for alias, version in surroundings.aliases if version != "$LATEST"]
    if published:
        names = ", ".join(f"{alias} (version {version})" for alias, version in published)
        return (
            f"reached through alias {names}: plldb instruments $LATEST only, so that "
            "traffic would never reach this machine; debug it with the alias on $LATEST "
            "(e.g. deploy without AutoPublishAlias while debugging) or invoke $LATEST"
        )
    return None


def utc_today() -> datetime.date:
    return datetime.datetime.now(datetime.timezone.utc).date()


def layers_refused(problems: tuple[tuple[str, str], ...]) -> str:
    """Why Lambda refuses any update of a function with these layers, and what to do."""
    described = "; ".join(f"{arn} ({why})" for arn, why in problems)
    return (
        f"its layer {described} can no longer be added to a function, and every update "
        "re-sends all of a function's layers, so Lambda refuses it: deploy the function "
        "with a layer version that exists"
    )


def layers_left(outcome: Outcome, problems: tuple[tuple[str, str], ...]) -> Outcome:
    """A restore that could not set the layers: everything else of plldb's is gone."""
    return Outcome(
        outcome.function,
        WARNING if outcome.status == OK else outcome.status,
        f"{outcome.message}; but its layers are left as they were, the plldb layer included "
        f"(inert: its variables are removed): {layers_refused(problems)}, which also drops "
        "the plldb layer",
    )


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


def applied(
    current: dict[str, Any], config: common.Config, session_id: str, timeout: int
) -> dict[str, Any]:
    """The configuration while attached: the layer, the shim's variables, ``timeout``.

    Computed from the function's own configuration (the current one without plldb's
    traces), so running it again on an instrumented function gives the same result. The
    function's own timeout is recorded in ``PLLDB_ORIGINAL_TIMEOUT`` for the restore (not
    when an earlier instrumentation left no valid record of it: no value is made up).

    The timeout is exactly what the session asked for (``--timeout``), lower than the
    function's own or higher: a developer may want a short one to see the timeout path.
    """
    original = strip_traces(current)
    env = dict(original["Environment"])
    if naming.ENV_EXEC_WRAPPER in env:
        env[naming.ENV_ORIGINAL_WRAPPER] = env[naming.ENV_EXEC_WRAPPER]
    own = own_timeout(current)
    if own is not None:
        env[naming.ENV_ORIGINAL_TIMEOUT] = str(own)
    env.update(
        {
            naming.ENV_EXEC_WRAPPER: naming.WRAPPER_PATH,
            naming.ENV_SESSION_ID: session_id,
            naming.ENV_SESSIONS_TABLE: config.sessions_table,
            naming.ENV_DEBUGGER_TABLE: config.debugger_table,
            naming.ENV_MANAGEMENT_URL: config.management_url,
            naming.ENV_PAYLOAD_BUCKET: config.payload_bucket,
            naming.ENV_GRACE_SECONDS: f"{config.grace_seconds:g}",
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
    today: datetime.date | None = None,
) -> Plan | Outcome:
    """Decide what to do with one function; an Outcome when it is skipped."""
    today = today or utc_today()
    reason = unsupported(configuration, surroundings, today)
    if reason:
        return Outcome(name, SKIPPED, reason)
    current = config_subset(configuration)
    own_layers = strip_traces(current)["Layers"]
    if len(own_layers) >= limits.MAX_LAYERS:
        return Outcome(
            name,
            SKIPPED,
            f"already has {len(own_layers)} layers, the maximum is "
            f"{limits.MAX_LAYERS}: no room for the plldb layer",
        )
    target = applied(current, config, session_id, timeout)
    size = environment_size(target["Environment"])
    if size > limits.ENV_LIMIT:
        return Outcome(
            name,
            SKIPPED,
            f"environment would be {size} bytes with the plldb variables (as JSON text, as "
            f"Lambda measures it), over the {limits.ENV_LIMIT} byte limit",
        )
    return Plan(
        name=name,
        arn=configuration["FunctionArn"],
        role_name=configuration["Role"].rsplit("/", 1)[-1],
        applied=target,
        record=record,
        current=current,
        warnings=queue_warnings(surroundings, timeout)
        + [w for w in [features.runtime_warning(configuration["Runtime"], today)] if w],
    )


def summary(outcomes: list[Outcome]) -> dict[str, Any]:
    """What the manager reports at the end of a run, by status."""
    return {
        "instrumented": sorted(o.function for o in outcomes if o.status == OK),
        "skipped": [
            {"function": o.function, "reason": o.message} for o in outcomes if o.status == SKIPPED
        ],
        "failed": [
            {"function": o.function, "reason": o.message} for o in outcomes if o.status == FAILED
        ],
        "warnings": [
            {"function": o.function, "reason": o.message} for o in outcomes if o.status == WARNING
        ],
    }
