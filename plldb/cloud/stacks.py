"""Deploying a stack through a change set, and deleting it, with stack events streamed as progress.

"No changes" counts as success; a failed change set or stack names the first resource that
failed and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import botocore.exceptions

from plldb import __version__
from plldb.cloud.aws import AwsContext, error_code
from plldb.cloud.failures import BootstrapError, one_line, step

Progress = Callable[[str], None]

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
POLL_SECONDS = 2.0
STACK_TIMEOUT_SECONDS = 30 * 60
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


def stack_status(cf: Any, stack_name: str) -> str | None:
    """The stack's status, or None when there is no such (live) stack."""
    try:
        stacks = cf.describe_stacks(StackName=stack_name)["Stacks"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            return None
        raise
    status = stacks[0]["StackStatus"] if stacks else None
    return None if status == "DELETE_COMPLETE" else status


def stack_outputs(cf: Any, stack_name: str) -> dict[str, str]:
    stack = cf.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: str(o["OutputValue"]) for o in stack.get("Outputs") or []}


class _EventStream:
    """Reports each new stack event once, oldest first, through ``progress``."""

    def __init__(self, cf: Any, stack_name: str, progress: Progress) -> None:
        self.cf = cf
        self.stack_name = stack_name
        self.progress = progress
        self.seen: set[str] = {e["EventId"] for e in self._events()}
        self.failures: list[dict[str, Any]] = []

    def _events(self) -> list[dict[str, Any]]:
        try:
            return self.cf.describe_stack_events(StackName=self.stack_name)["StackEvents"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ValidationError":  # the stack is gone (deleted)
                return []
            raise

    def poll(self) -> None:
        new = [e for e in self._events() if e["EventId"] not in self.seen]
        for event in reversed(new):  # the API lists newest first
            self.seen.add(event["EventId"])
            status = event.get("ResourceStatus", "")
            reason = event.get("ResourceStatusReason") or ""
            line = f"{status:<20} {event['LogicalResourceId']} ({event.get('ResourceType', '')})"
            self.progress(f"{line} {reason}".rstrip())
            if status.endswith("_FAILED") and reason:
                self.failures.append(event)

    def first_failure(self) -> str | None:
        """The root cause: the earliest failed resource other than the stack itself."""
        for event in self.failures:
            if event["LogicalResourceId"] != self.stack_name or len(self.failures) == 1:
                return (
                    f"{event['LogicalResourceId']} ({event.get('ResourceType', '')}): "
                    f"{one_line(event['ResourceStatusReason'])}"
                )
        return None


def _wait_stack(cf: Any, stream: _EventStream, stack_name: str, poll_seconds: float) -> str | None:
    """Poll until the stack is no longer IN_PROGRESS; stream events meanwhile."""
    deadline = time.monotonic() + STACK_TIMEOUT_SECONDS
    while True:
        stream.poll()
        status = stack_status(cf, stack_name)
        if status is None or not status.endswith("_IN_PROGRESS"):
            stream.poll()
            return status
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"stack {stack_name} still {status} after {STACK_TIMEOUT_SECONDS // 60} minutes"
            )
        time.sleep(poll_seconds)


def _wait_change_set(cf: Any, stack_name: str, change_set: str, poll_seconds: float) -> dict:
    deadline = time.monotonic() + STACK_TIMEOUT_SECONDS
    while True:
        described = cf.describe_change_set(StackName=stack_name, ChangeSetName=change_set)
        if described["Status"] in {"CREATE_COMPLETE", "FAILED"}:
            return described
        if time.monotonic() > deadline:
            raise BootstrapError(f"change set {change_set} not ready in time")
        time.sleep(poll_seconds)


def _all_changes(cf: Any, stack_name: str, described: dict) -> list[dict[str, Any]]:
    changes = list(described.get("Changes", []))
    token = described.get("NextToken")
    while token:
        page = cf.describe_change_set(
            StackName=stack_name, ChangeSetName=described["ChangeSetId"], NextToken=token
        )
        changes += page.get("Changes", [])
        token = page.get("NextToken")
    return [c["ResourceChange"] for c in changes if c.get("Type") == "Resource"]


def _missing_resources(cf: Any, stack_name: str, changes: list[dict[str, Any]]) -> list[str]:
    """Resources the change set adds or modifies that the stack does not report complete.

    CloudFormation never finishes a stack without them; an emulator that skips a resource
    type it does not know does, and the user must hear which resources are missing.
    """
    paginator = cf.get_paginator("list_stack_resources")
    done = {
        r["LogicalResourceId"]
        for page in paginator.paginate(StackName=stack_name)
        for r in page["StackResourceSummaries"]
        if r["ResourceStatus"].endswith("_COMPLETE")
    }
    return [
        f"{c['LogicalResourceId']} ({c['ResourceType']})"
        for c in changes
        if c.get("Action") in {"Add", "Modify"} and c["LogicalResourceId"] not in done
    ]


def deploy_stack(
    ctx: AwsContext,
    stack_name: str,
    template_body: str,
    parameters: dict[str, str],
    progress: Progress,
    poll_seconds: float = POLL_SECONDS,
) -> bool:
    """Create or update ``stack_name`` through a change set; False when nothing changed."""
    cf = ctx.client("cloudformation")
    with step(f"reading stack {stack_name}"):
        status = stack_status(cf, stack_name)
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise BootstrapError(f"stack {stack_name} is busy ({status}): wait for it and retry")
    if status in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED"}:
        progress(f"stack {stack_name} is {status} from an earlier failed creation: deleting it")
        delete_stack(ctx, stack_name, progress, poll_seconds)
        status = None
    change_set_type = "CREATE" if status in {None, "REVIEW_IN_PROGRESS"} else "UPDATE"
    name = f"plldb-{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S')}"
    with step(f"creating change set {name} for stack {stack_name}"):
        created = cf.create_change_set(
            StackName=stack_name,
            ChangeSetName=name,
            ChangeSetType=change_set_type,
            TemplateBody=template_body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=CAPABILITIES,
            Description=f"plldb {__version__} bootstrap",
        )
        described = _wait_change_set(cf, stack_name, created["Id"], poll_seconds)
    if described["Status"] == "FAILED":
        reason = one_line(described.get("StatusReason", ""))
        if any(marker in reason for marker in _NO_CHANGES):
            with step(f"deleting empty change set {name}"):
                cf.delete_change_set(StackName=stack_name, ChangeSetName=created["Id"])
            return False
        raise BootstrapError(f"change set {name} for stack {stack_name} failed: {reason}")
    with step(f"reading change set {name}"):
        changes = _all_changes(cf, stack_name, described)
    progress(f"change set {name}: {len(changes)} resource change(s), executing")
    with step(f"reading events of stack {stack_name}"):
        stream = _EventStream(cf, stack_name, progress)
    with step(f"executing change set {name} of stack {stack_name}"):
        cf.execute_change_set(StackName=stack_name, ChangeSetName=created["Id"])
    with step(f"waiting for stack {stack_name}"):
        final = _wait_stack(cf, stream, stack_name, poll_seconds)
    if final not in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}:
        cause = stream.first_failure() or "no resource reported a reason"
        raise BootstrapError(f"stack {stack_name} ended {final}: {cause}")
    with step(f"checking resources of stack {stack_name}"):
        missing = _missing_resources(cf, stack_name, changes)
    if missing:
        raise BootstrapError(
            f"stack {stack_name} ended {final} without creating {', '.join(missing)}: "
            "the CloudFormation endpoint does not support these resources"
        )
    return True


def delete_stack(
    ctx: AwsContext, stack_name: str, progress: Progress, poll_seconds: float
) -> None:
    cf = ctx.client("cloudformation")
    with step(f"deleting stack {stack_name}"):
        stream = _EventStream(cf, stack_name, progress)
        cf.delete_stack(StackName=stack_name)
        final = _wait_stack(cf, stream, stack_name, poll_seconds)
    if final is not None:
        cause = stream.first_failure() or "no resource reported a reason"
        raise BootstrapError(f"stack {stack_name} could not be deleted ({final}): {cause}")
