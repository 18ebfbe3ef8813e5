"""Lambda features plldb cannot debug through, read from a function's configuration.

Each check returns why the function is skipped, with what the developer can do, or None.
They are separate from :mod:`plldb.lambdas.manager.plan` because each follows one AWS
statement (sourced in docs/aws-limits.md) that may change on AWS's side, and is tested on
its own. Runtime blocks depend on the date: the manager passes today's, tests pass any.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

# From these dates ("Block function update" in AWS's table of deprecated runtimes) Lambda
# refuses every configuration update of a function on the runtime: plldb could neither
# instrument nor restore it. AWS has moved such dates before; the table is the reference.
UPDATE_BLOCKED_FROM = {
    "python3.9": datetime.date(2026, 3, 9),
    "python3.10": datetime.date(2027, 1, 15),
}
# Python runtimes older than this were blocked before the table above was kept.
OLDEST_UPDATABLE = (3, 9)
# A block this close (a session's lifetime) would fail the restore of today's attach.
BLOCK_WARNING_DAYS = 1
SUPPORTED_EXAMPLE = "python3.13"


def python_version(runtime: str) -> tuple[int, int] | None:
    """(3, 12) for ``python3.12``; None for anything that is not a Python runtime id."""
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    return (int(match.group(1)), int(match.group(2))) if match else None


def blocked_runtime(runtime: str, today: datetime.date) -> str | None:
    """Why a function on ``runtime`` cannot be changed by anyone on ``today``, or None."""
    version = python_version(runtime)
    if version is None:
        return None
    since = UPDATE_BLOCKED_FROM.get(runtime)
    if since is None and version >= OLDEST_UPDATABLE:
        return None
    if since is not None and today < since:
        return None
    when = f" since {since.isoformat()}" if since else ""
    return (
        f"runtime {runtime} is deprecated and AWS blocks updates of its functions{when}: "
        "plldb could neither instrument nor restore it; move the function to a supported "
        f"Python runtime (e.g. {SUPPORTED_EXAMPLE}) to debug it"
    )


def runtime_warning(runtime: str, today: datetime.date) -> str | None:
    """A warning when AWS blocks the runtime's updates before a session started today ends."""
    since = UPDATE_BLOCKED_FROM.get(runtime)
    if since is None or not 0 < (since - today).days <= BLOCK_WARNING_DAYS:
        return None
    return (
        f"AWS blocks updates of {runtime} functions from {since.isoformat()}: detach before "
        "then, or restoring this function will fail; move it to a supported Python runtime "
        f"(e.g. {SUPPORTED_EXAMPLE})"
    )


def managed_instances(configuration: dict[str, Any]) -> str | None:
    """Lambda Managed Instances: traffic never reaches $LATEST, and the runtime is not one loop."""
    config = configuration.get("CapacityProviderConfig")
    if not config:
        return None
    provider = (config.get("LambdaManagedInstancesCapacityProviderConfig") or {}).get(
        "CapacityProviderArn", "a capacity provider"
    )
    return (
        f"runs on Lambda Managed Instances ({provider}): an unqualified invoke runs its "
        "$LATEST.PUBLISHED version, never the $LATEST plldb instruments, and its Python "
        "runtime serves requests from several processes, a loop the plldb shim would replace; "
        "debug a copy of the function without CapacityProviderConfig"
    )


def durable(configuration: dict[str, Any]) -> str | None:
    """Durable functions replay their handler: a replay must run the same code every time."""
    if not configuration.get("DurableConfig"):
        return None
    return (
        "durable function (DurableConfig): every replay of its durable executions would run "
        "this machine's code, edits included, and AWS warns that code which changes between "
        "replays breaks them; debug a copy of the function without DurableConfig"
    )
