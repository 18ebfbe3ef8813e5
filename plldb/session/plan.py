"""Planning an attach: find everything and check everything, changing nothing.

Split like Chalice's deploy (a plan, then an execution): :func:`plan_attach` makes no change
anywhere and fails with a clear error on bad input (no helper stack, no such stack, a
template that doesn't match); :class:`~plldb.session.attach.Attachment` then runs the plan.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plldb import naming
from plldb.cloud.aws import AwsContext, caller_identity, error_code
from plldb.cloud.helper_stack import HelperStack, find_helper_stack
from plldb.local.debuggers import (
    DebugpyOptions,
)
from plldb.project.by_name import NamedCode, discover_by_name
from plldb.project.discovery import discover
from plldb.project.model import Discovery, LocalFunction
from plldb.project.stack_mapping import collect_stack_resources, map_stack_functions
from plldb.session.sessions import SessionConflict, SessionStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttachOptions:
    stack_name: str
    template: Path
    functions: tuple[str, ...] = ()
    timeout: int | None = None
    debugpy: DebugpyOptions | None = None
    pycharm: tuple[str, int] | None = None
    force: bool = False
    credentials: str = "function"
    stage: str | None = None  # Serverless Framework stage
    cdk_out: Path | None = None  # a CDK app's synthesized folder, when not cdk.out
    named: tuple[NamedCode, ...] = ()  # functions by name (no stack): stack_name is their key
    routes: tuple[str, ...] = ()  # --route: a session of the stack's shared stage
    mirror: bool = False  # --mirror: copies of what the cloud answered

    @property
    def shared(self) -> bool:
        """A session of a shared stage: it takes only what its routes match."""
        return bool(self.routes) or self.mirror


@dataclass
class AttachPlan:
    helper: HelperStack
    functions: dict[str, LocalFunction]
    caller_arn: str  # who attaches: recorded in the session, shown to a second attach
    debugger_ctx: AwsContext  # the debugger role, assumed once while planning
    warnings: list[str] = field(default_factory=list)
    skipped: frozenset[str] = frozenset()  # physical names already warned about
    project: Discovery | None = None  # what discovery found (kind, files read), for messages
    # --function as the session asks for it: a typed name turned into its logical id
    function_filters: tuple[str, ...] = ()


class StackNotFound(Exception):
    """The target stack does not exist in this account and region."""


class NothingToDebug(Exception):
    """The stack (or the --function filter) leaves no Python function to run locally."""


def plan_attach(ctx: AwsContext, options: AttachOptions, project: Discovery | None = None) -> AttachPlan:
    """Everything attach needs, found and checked without changing anything.

    A stack attached by someone else is refused here (unless --force), before anything is
    printed or started; :meth:`SessionStore.create` checks again against a race. ``project``
    is the discovery already read (to find the stack name), else it is read here.
    """
    caller_arn = naming.session_owner(caller_identity(ctx)["Arn"])  # as the authorizer names it
    helper = find_helper_stack(ctx)
    debugger_ctx = ctx.assumed(helper.debugger_role_arn, "plldb-attach")
    if not options.force:
        SessionStore(debugger_ctx, helper.sessions_table).refuse_if_attached(
            options.stack_name, shared=options.shared)
    if options.named:
        if not options.force:
            refuse_if_debugged(SessionStore(debugger_ctx, helper.sessions_table),
                               [n.name for n in options.named])
        discovery = discover_by_name(ctx, list(options.named))
        return AttachPlan(helper=helper, functions=discovery.functions, caller_arn=caller_arn,
                          debugger_ctx=debugger_ctx, warnings=list(discovery.warnings),
                          project=discovery)
    discovery = project or discover(options.template, stack_name=options.stack_name,
                                    stage=options.stage, cdk_out=options.cdk_out)
    resources = collect_stack_resources(
        lambda stack: list_stack_resources(ctx, stack), options.stack_name
    )
    mapping = map_stack_functions(discovery, resources)
    filters = typed_names(options.functions, discovery)
    functions = select_functions(mapping.functions, filters)
    if not functions:
        raise NothingToDebug(describe_nothing_to_debug(options, mapping.skipped))
    if not options.force:  # a session by name may debug one of the stack's functions
        refuse_if_debugged(SessionStore(debugger_ctx, helper.sessions_table), list(functions))
    warnings = list(discovery.warnings)
    warnings += [f"{name}: not debugged ({why})" for name, why in mapping.skipped.items()]
    return AttachPlan(helper=helper, functions=functions, caller_arn=caller_arn,
                      debugger_ctx=debugger_ctx, warnings=warnings,
                      skipped=frozenset(mapping.skipped), project=discovery,
                      function_filters=filters)


def refuse_if_debugged(store: SessionStore, names: list[str]) -> None:
    """SessionConflict when a live session (of a stack, or of a set of names) has
    instrumented one of ``names``: claiming them would take the claim tag from under that
    session (for a by-name attach, the authorizer would also refuse the connect)."""
    sessions, records = store.contents()
    live = {s.session_id: s for s in sessions if s.live}
    for record in records:
        holder = live.get(record.session_id)
        if record.function_name in names and holder:
            raise SessionConflict(
                f"function {record.function_name!r} is already debugged by {holder.created_by} "
                f"since {holder.created_at} (session {holder.status.lower()}, {holder.stack_name}): "
                "use --force to take it over"
            )


def list_stack_resources(ctx: AwsContext, stack_name: str) -> list[dict[str, Any]]:
    """Every resource summary of one stack; a missing stack is a clear error."""
    paginator = ctx.client("cloudformation").get_paginator("list_stack_resources")
    try:
        return [r for page in paginator.paginate(StackName=stack_name)
                for r in page["StackResourceSummaries"]]
    except Exception as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            raise StackNotFound(
                f"stack {stack_name!r} not found in region {ctx.region_name}: "
                "check --stack-name and --region"
            ) from exc
        raise


def typed_names(patterns: tuple[str, ...], discovery: Discovery) -> tuple[str, ...]:
    """``--function`` values as the session asks for them: one that is another name of
    exactly one function (its serverless.yml key, CDK construct path or id, ``plldb
    functions`` lists them) becomes its logical id, which the manager's filter matches too;
    logical ids, physical names and globs stay as typed."""
    resolved = []
    for pattern in patterns:
        owners = sorted({logical for logical, names in discovery.names.items() if pattern in names})
        resolved.append(owners[0] if len(owners) == 1 and pattern not in discovery.functions else pattern)
    return tuple(resolved)


def select_functions(
    functions: dict[str, LocalFunction], patterns: tuple[str, ...]
) -> dict[str, LocalFunction]:
    """Keep the functions whose logical id or physical name matches a --function glob."""
    if not patterns:
        return functions
    return {
        physical: function
        for physical, function in functions.items()
        if any(fnmatch.fnmatchcase(function.logical_id, pattern)
               or fnmatch.fnmatchcase(physical, pattern) for pattern in patterns)
    }


def describe_nothing_to_debug(options: AttachOptions, skipped: dict[str, str]) -> str:
    if options.functions:
        return (f"no Python function of stack {options.stack_name!r} matches "
                f"--function {' '.join(options.functions)}")
    reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
    return f"stack {options.stack_name!r} has no Python functions" + (
        f" ({reasons})" if reasons else "")
