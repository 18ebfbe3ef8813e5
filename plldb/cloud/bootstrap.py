"""`plldb bootstrap`: the artifact bucket, the code zips and the helper stack ``plldb``.

Planning and executing are split (as Chalice does): :func:`plan_setup` only reads (account,
bucket settings, which zips are already uploaded, stack state) and returns a
:class:`SetupPlan`; :func:`execute_setup` applies it. The plan says up front what will be
done, and everything it holds (the template included) is plain data.

The bucket's settings are :mod:`plldb.cloud.bucket`, the change set and its events
:mod:`plldb.cloud.stacks`; failures raise :class:`~plldb.cloud.failures.BootstrapError`
with one line naming what failed and why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from plldb import __version__
from plldb.cloud import packaging
from plldb.cloud.aws import AwsContext, caller_identity, partition_of
from plldb.cloud.bucket import (
    BUCKET_SETTINGS,
    Bucket,
    bucket_exists,
    bucket_name,
    create_bucket,
    empty_bucket,
    kms_refusal,
    object_exists,
    wanted_settings,
)
from plldb.cloud.failures import BootstrapError, step
from plldb.cloud.stacks import (
    POLL_SECONDS,
    Progress,
    delete_stack,
    deploy_stack,
    stack_outputs,
    stack_status,
)
from plldb.naming import HELPER_STACK_NAME

log = logging.getLogger(__name__)

__all__ = ["BootstrapError", "execute_setup", "plan_setup", "setup", "destroy"]

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"

# Template parameter holding each artifact's S3 key.
CODE_KEY_PARAMETERS = {
    "authorizer": "AuthorizerCodeKey",
    "connect": "ConnectCodeKey",
    "disconnect": "DisconnectCodeKey",
    "default": "DefaultCodeKey",
    "manager": "ManagerCodeKey",
    packaging.LAYER_NAME: "LayerCodeKey",
}


def artifact_key(name: str, data: bytes) -> str:
    """Versioned and content-addressed: a key never changes content once uploaded."""
    return f"artifacts/{__version__}/{packaging.content_name(name, data)}"


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Artifact:
    name: str
    key: str
    data: bytes = field(repr=False)
    uploaded: bool


@dataclass(frozen=True)
class SetupPlan:
    """Everything :func:`execute_setup` will do, computed by reading only."""

    region: str
    account_id: str
    partition: str  # of the caller's ARN: aws, aws-cn, aws-us-gov
    bucket: str
    bucket_exists: bool
    bucket_fixes: tuple[str, ...]
    skipped_settings: tuple[str, ...]
    artifacts: tuple[Artifact, ...]
    stack_status: str | None
    template_body: str = field(repr=False)

    @property
    def uploads(self) -> tuple[Artifact, ...]:
        return tuple(a for a in self.artifacts if not a.uploaded)

    @property
    def parameters(self) -> dict[str, str]:
        values = {"HelperStackVersion": __version__, "ArtifactBucket": self.bucket}
        values.update({CODE_KEY_PARAMETERS[a.name]: a.key for a in self.artifacts})
        return values

    def describe(self) -> list[str]:
        """What the plan will do, one line per step, for the user."""
        if not self.bucket_exists:
            lines = [f"create bucket {self.bucket}"]
        elif self.bucket_fixes:
            lines = [f"update bucket {self.bucket}: {', '.join(self.bucket_fixes)}"]
        else:
            lines = [f"bucket {self.bucket} is up to date"]
        lines += [f"skip {name}: S3 endpoint is not TLS" for name in self.skipped_settings]
        if self.uploads:
            lines.append(f"upload {', '.join(a.key for a in self.uploads)}")
        else:
            lines.append("all code zips already uploaded")
        action = (
            "update"
            if self.stack_status and self.stack_status != "REVIEW_IN_PROGRESS"
            else "create"
        )
        lines.append(f"{action} stack {HELPER_STACK_NAME} through a change set")
        return lines


def plan_setup(ctx: AwsContext) -> SetupPlan:
    """Read the account's current state and decide what setup must do."""
    identity = caller_identity(ctx)  # raises AwsAccessError first when credentials are bad
    account_id, partition = identity["Account"], partition_of(identity["Arn"])
    region = ctx.region_name
    bucket = bucket_name(region, account_id)
    s3 = ctx.client("s3")
    with step(f"reading bucket {bucket}"):
        exists = bucket_exists(s3, bucket)
        refusal = exists and kms_refusal(s3, Bucket(bucket, partition))
        if refusal:
            raise BootstrapError(refusal)
        wanted = wanted_settings(s3.meta.endpoint_url)
        fixes = tuple(
            name
            for name in wanted
            if not (exists and BUCKET_SETTINGS[name][0](s3, Bucket(bucket, partition)))
        )
        artifacts = []
        for name, data in packaging.all_zips().items():
            key = artifact_key(name, data)
            artifacts.append(Artifact(name, key, data, exists and object_exists(s3, bucket, key)))
    with step(f"reading stack {HELPER_STACK_NAME}"):
        status = stack_status(ctx.client("cloudformation"), HELPER_STACK_NAME)
    return SetupPlan(
        region=region,
        account_id=account_id,
        partition=partition,
        bucket=bucket,
        bucket_exists=exists,
        bucket_fixes=fixes,
        skipped_settings=tuple(name for name in BUCKET_SETTINGS if name not in wanted),
        artifacts=tuple(artifacts),
        stack_status=status,
        template_body=TEMPLATE_PATH.read_text(),
    )


# --------------------------------------------------------------------------- execute


@dataclass
class SetupResult:
    actions: list[str]
    stack_changed: bool
    outputs: dict[str, str]


def execute_setup(
    ctx: AwsContext, plan: SetupPlan, progress: Progress, poll_seconds: float = POLL_SECONDS
) -> SetupResult:
    """Apply ``plan``: bucket, uploads, change set. Says what it did through ``progress``."""
    actions: list[str] = []

    def did(message: str) -> None:
        actions.append(message)
        progress(message)

    s3 = ctx.client("s3")
    for name in plan.skipped_settings:
        progress(f"warning: {name} not set: the S3 endpoint {s3.meta.endpoint_url} is not TLS")
    with step(f"preparing bucket {plan.bucket}"):
        if not plan.bucket_exists:
            create_bucket(s3, plan.bucket, plan.region)
            did(f"created bucket {plan.bucket}")
        for name in plan.bucket_fixes:
            BUCKET_SETTINGS[name][1](s3, Bucket(plan.bucket, plan.partition))
            did(f"bucket {plan.bucket}: set {name}")
    for artifact in plan.uploads:
        with step(f"uploading {artifact.key}"):
            s3.put_object(Bucket=plan.bucket, Key=artifact.key, Body=artifact.data)
        did(f"uploaded s3://{plan.bucket}/{artifact.key} ({len(artifact.data)} bytes)")
    changed = deploy_stack(
        ctx, HELPER_STACK_NAME, plan.template_body, plan.parameters, progress, poll_seconds
    )
    if changed:
        did(f"deployed stack {HELPER_STACK_NAME}")
    else:
        did(f"stack {HELPER_STACK_NAME}: no changes")
    with step(f"reading outputs of stack {HELPER_STACK_NAME}"):
        outputs = stack_outputs(ctx.client("cloudformation"), HELPER_STACK_NAME)
    return SetupResult(actions=actions, stack_changed=changed, outputs=outputs)


def setup(ctx: AwsContext, progress: Progress, poll_seconds: float = POLL_SECONDS) -> SetupResult:
    """Plan and execute in one go (what `plldb bootstrap setup` does)."""
    plan = plan_setup(ctx)
    for line in plan.describe():
        log.info("plan: %s", line)
    return execute_setup(ctx, plan, progress, poll_seconds)


# --------------------------------------------------------------------------- destroy


def destroy(ctx: AwsContext, progress: Progress, poll_seconds: float = POLL_SECONDS) -> list[str]:
    """Delete stack ``plldb`` (waiting for it), then empty and delete the bucket.

    Idempotent: whatever is already gone is reported as such. Returns what was done.
    """
    account_id = ctx.account_id()
    bucket = bucket_name(ctx.region_name, account_id)
    actions: list[str] = []

    def did(message: str) -> None:
        actions.append(message)
        progress(message)

    with step(f"reading stack {HELPER_STACK_NAME}"):
        status = stack_status(ctx.client("cloudformation"), HELPER_STACK_NAME)
    if status is None:
        did(f"stack {HELPER_STACK_NAME} does not exist")
    else:
        delete_stack(ctx, HELPER_STACK_NAME, progress, poll_seconds)
        did(f"deleted stack {HELPER_STACK_NAME}")
    s3 = ctx.client("s3")
    with step(f"deleting bucket {bucket}"):
        if bucket_exists(s3, bucket):
            count = empty_bucket(s3, bucket)
            s3.delete_bucket(Bucket=bucket)
            did(f"deleted bucket {bucket} ({count} object(s))")
        else:
            did(f"bucket {bucket} does not exist")
    return actions
