"""`plldb bootstrap`: the artifact bucket, the code zips and the helper stack ``plldb``.

Planning and executing are split (as Chalice does): :func:`plan_setup` only reads (account,
bucket settings, which zips are already uploaded, stack state) and returns a
:class:`SetupPlan`; :func:`execute_setup` applies it. The plan says up front what will be
done, and everything it holds (the template included) is plain data.

Failures raise :class:`BootstrapError` with one line naming what failed and why; the CLI
prints it and exits non-zero.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import botocore.exceptions
from botocore.parsers import ResponseParserError

from plldb import __version__
from plldb.cloud import packaging
from plldb.cloud.aws import AwsContext, caller_identity, error_code, partition_of
from plldb.naming import HELPER_STACK_NAME, PAYLOAD_PREFIX

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"
BUCKET_PREFIX = "plldb-core-infrastructure"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
LIFECYCLE_RULE_ID = "plldb-expire-payloads"
POLL_SECONDS = 2.0
STACK_TIMEOUT_SECONDS = 30 * 60
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")

# Template parameter holding each artifact's S3 key.
CODE_KEY_PARAMETERS = {
    "authorizer": "AuthorizerCodeKey",
    "connect": "ConnectCodeKey",
    "disconnect": "DisconnectCodeKey",
    "default": "DefaultCodeKey",
    "manager": "ManagerCodeKey",
    packaging.LAYER_NAME: "LayerCodeKey",
}


class BootstrapError(Exception):
    """Setting up or destroying the helper stack failed; the text says what and why."""


def bucket_name(region: str, account_id: str) -> str:
    return f"{BUCKET_PREFIX}-{region}-{account_id}"


def artifact_key(name: str, data: bytes) -> str:
    """Versioned and content-addressed: a key never changes content once uploaded."""
    return f"artifacts/{__version__}/{packaging.content_name(name, data)}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextmanager
def _step(what: str) -> Iterator[None]:
    """Turn any AWS error inside ``what`` into a one-line BootstrapError."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "") or "Error"
        message = error.get("Message", "") or str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status and status >= 500 and message.lstrip().startswith("<"):
            message = f"the service returned an internal error (HTTP {status})"
        raise BootstrapError(f"{what} failed: {code}: {_one_line(message)}") from exc
    except (botocore.exceptions.BotoCoreError, ResponseParserError) as exc:
        detail = str(exc)
        if "invalid XML received" in detail or "<html" in detail.lower():
            detail = "the service returned an internal error (not a valid AWS response)"
        raise BootstrapError(f"{what} failed: {_one_line(detail)[:300]}") from exc


# --------------------------------------------------------------------------- bucket


@dataclass(frozen=True)
class Bucket:
    """The bootstrap bucket's name, and the partition its ARN is in (aws, aws-cn, aws-us-gov)."""

    name: str
    partition: str

    @property
    def arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.name}"


def _tls_only_policy(bucket: Bucket) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket.arn, f"{bucket.arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


_PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
_LIFECYCLE_RULE = {
    "ID": LIFECYCLE_RULE_ID,
    "Status": "Enabled",
    "Filter": {"Prefix": PAYLOAD_PREFIX},
    "Expiration": {"Days": 1},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}


def _read(call: Callable[[], dict[str, Any]], missing_codes: set[str]) -> dict[str, Any] | None:
    """A bucket setting, or None when the bucket has none (each setting has its own code)."""
    try:
        return call()
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in missing_codes:
            return None
        raise


def _public_access_ok(s3: Any, bucket: Bucket) -> bool:
    current = _read(
        lambda: s3.get_public_access_block(Bucket=bucket.name),
        {"NoSuchPublicAccessBlockConfiguration"},
    )
    return bool(current) and current["PublicAccessBlockConfiguration"] == _PUBLIC_ACCESS_BLOCK


def _encryption_ok(s3: Any, bucket: Bucket) -> bool:
    """Any default encryption counts: a KMS key chosen by the account is kept."""
    current = _read(
        lambda: s3.get_bucket_encryption(Bucket=bucket.name),
        {"ServerSideEncryptionConfigurationNotFoundError"},
    )
    rules = (current or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    return any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules)


def _policy_ok(s3: Any, bucket: Bucket) -> bool:
    current = _read(lambda: s3.get_bucket_policy(Bucket=bucket.name), {"NoSuchBucketPolicy"})
    return bool(current) and json.loads(current["Policy"]) == _tls_only_policy(bucket)


def _lifecycle_ok(s3: Any, bucket: Bucket) -> bool:
    current = _read(
        lambda: s3.get_bucket_lifecycle_configuration(Bucket=bucket.name),
        {"NoSuchLifecycleConfiguration"},
    )
    return bool(current) and _LIFECYCLE_RULE in current.get("Rules", [])


def _put_public_access(s3: Any, bucket: Bucket) -> None:
    s3.put_public_access_block(Bucket=bucket.name, PublicAccessBlockConfiguration=_PUBLIC_ACCESS_BLOCK)


def _put_encryption(s3: Any, bucket: Bucket) -> None:
    s3.put_bucket_encryption(Bucket=bucket.name, ServerSideEncryptionConfiguration=_ENCRYPTION)


def _put_policy(s3: Any, bucket: Bucket) -> None:
    s3.put_bucket_policy(Bucket=bucket.name, Policy=json.dumps(_tls_only_policy(bucket)))


def _put_lifecycle(s3: Any, bucket: Bucket) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket.name, LifecycleConfiguration={"Rules": [_LIFECYCLE_RULE]}
    )


TLS_POLICY = "TLS-only bucket policy"

# name -> (is it already as wanted?, apply it)
BUCKET_SETTINGS: dict[str, tuple[Callable[[Any, Bucket], bool], Callable[[Any, Bucket], None]]] = {
    "public access block": (_public_access_ok, _put_public_access),
    "default encryption": (_encryption_ok, _put_encryption),
    TLS_POLICY: (_policy_ok, _put_policy),
    f"lifecycle expiring {PAYLOAD_PREFIX} after 1 day": (_lifecycle_ok, _put_lifecycle),
}


def wanted_settings(endpoint_url: str) -> list[str]:
    """The bucket settings to enforce when S3 is reached at ``endpoint_url``.

    A TLS-only policy denies every request that does not arrive over TLS: on a plain
    ``http://`` endpoint (an S3 emulator on loopback) it would lock plldb out of its own
    bucket, so it is left out there (and the plan says so). AWS endpoints are https.
    """
    if endpoint_url.startswith("https://"):
        return list(BUCKET_SETTINGS)
    return [name for name in BUCKET_SETTINGS if name != TLS_POLICY]


def _bucket_exists(s3: Any, bucket: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return True
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
            return False
        if error_code(exc) in {"403", "AccessDenied"}:
            raise BootstrapError(
                f"bucket {bucket} exists but this account cannot use it (403): "
                "check that it belongs to this account"
            ) from exc
        raise


def _object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise


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
    with _step(f"reading bucket {bucket}"):
        exists = _bucket_exists(s3, bucket)
        wanted = wanted_settings(s3.meta.endpoint_url)
        fixes = tuple(
            name
            for name in wanted
            if not (exists and BUCKET_SETTINGS[name][0](s3, Bucket(bucket, partition)))
        )
        artifacts = []
        for name, data in packaging.all_zips().items():
            key = artifact_key(name, data)
            artifacts.append(Artifact(name, key, data, exists and _object_exists(s3, bucket, key)))
    with _step(f"reading stack {HELPER_STACK_NAME}"):
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
    with _step(f"preparing bucket {plan.bucket}"):
        if not plan.bucket_exists:
            _create_bucket(s3, plan.bucket, plan.region)
            did(f"created bucket {plan.bucket}")
        for name in plan.bucket_fixes:
            BUCKET_SETTINGS[name][1](s3, Bucket(plan.bucket, plan.partition))
            did(f"bucket {plan.bucket}: set {name}")
    for artifact in plan.uploads:
        with _step(f"uploading {artifact.key}"):
            s3.put_object(Bucket=plan.bucket, Key=artifact.key, Body=artifact.data)
        did(f"uploaded s3://{plan.bucket}/{artifact.key} ({len(artifact.data)} bytes)")
    changed = deploy_stack(
        ctx, HELPER_STACK_NAME, plan.template_body, plan.parameters, progress, poll_seconds
    )
    if changed:
        did(f"deployed stack {HELPER_STACK_NAME}")
    else:
        did(f"stack {HELPER_STACK_NAME}: no changes")
    with _step(f"reading outputs of stack {HELPER_STACK_NAME}"):
        outputs = stack_outputs(ctx.client("cloudformation"), HELPER_STACK_NAME)
    return SetupResult(actions=actions, stack_changed=changed, outputs=outputs)


def setup(ctx: AwsContext, progress: Progress, poll_seconds: float = POLL_SECONDS) -> SetupResult:
    """Plan and execute in one go (what `plldb bootstrap setup` does)."""
    plan = plan_setup(ctx)
    for line in plan.describe():
        log.info("plan: %s", line)
    return execute_setup(ctx, plan, progress, poll_seconds)


def _create_bucket(s3: Any, bucket: str, region: str) -> None:
    if region == "us-east-1":  # the one region that refuses a LocationConstraint
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})


# --------------------------------------------------------------------------- stack


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
                    f"{_one_line(event['ResourceStatusReason'])}"
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
    with _step(f"reading stack {stack_name}"):
        status = stack_status(cf, stack_name)
    if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise BootstrapError(f"stack {stack_name} is busy ({status}): wait for it and retry")
    if status in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED"}:
        progress(f"stack {stack_name} is {status} from an earlier failed creation: deleting it")
        _delete_stack(ctx, stack_name, progress, poll_seconds)
        status = None
    change_set_type = "CREATE" if status in {None, "REVIEW_IN_PROGRESS"} else "UPDATE"
    name = f"plldb-{datetime.now(timezone.utc).strftime('%Y%m%d%H%M%S')}"
    with _step(f"creating change set {name} for stack {stack_name}"):
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
        reason = _one_line(described.get("StatusReason", ""))
        if any(marker in reason for marker in _NO_CHANGES):
            with _step(f"deleting empty change set {name}"):
                cf.delete_change_set(StackName=stack_name, ChangeSetName=created["Id"])
            return False
        raise BootstrapError(f"change set {name} for stack {stack_name} failed: {reason}")
    with _step(f"reading change set {name}"):
        changes = _all_changes(cf, stack_name, described)
    progress(f"change set {name}: {len(changes)} resource change(s), executing")
    with _step(f"reading events of stack {stack_name}"):
        stream = _EventStream(cf, stack_name, progress)
    with _step(f"executing change set {name} of stack {stack_name}"):
        cf.execute_change_set(StackName=stack_name, ChangeSetName=created["Id"])
    with _step(f"waiting for stack {stack_name}"):
        final = _wait_stack(cf, stream, stack_name, poll_seconds)
    if final not in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}:
        cause = stream.first_failure() or "no resource reported a reason"
        raise BootstrapError(f"stack {stack_name} ended {final}: {cause}")
    with _step(f"checking resources of stack {stack_name}"):
        missing = _missing_resources(cf, stack_name, changes)
    if missing:
        raise BootstrapError(
            f"stack {stack_name} ended {final} without creating {', '.join(missing)}: "
            "the CloudFormation endpoint does not support these resources"
        )
    return True


# --------------------------------------------------------------------------- destroy


def _delete_stack(
    ctx: AwsContext, stack_name: str, progress: Progress, poll_seconds: float
) -> None:
    cf = ctx.client("cloudformation")
    with _step(f"deleting stack {stack_name}"):
        stream = _EventStream(cf, stack_name, progress)
        cf.delete_stack(StackName=stack_name)
        final = _wait_stack(cf, stream, stack_name, poll_seconds)
    if final is not None:
        cause = stream.first_failure() or "no resource reported a reason"
        raise BootstrapError(f"stack {stack_name} could not be deleted ({final}): {cause}")


def _empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object (and version, if versioning was ever on); returns the count."""
    count = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        entries = page.get("Versions", []) + page.get("DeleteMarkers", [])
        objects = [{"Key": e["Key"], "VersionId": e["VersionId"]} for e in entries]
        for start in range(0, len(objects), 1000):
            batch = objects[start : start + 1000]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            count += len(batch)
    return count


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

    with _step(f"reading stack {HELPER_STACK_NAME}"):
        status = stack_status(ctx.client("cloudformation"), HELPER_STACK_NAME)
    if status is None:
        did(f"stack {HELPER_STACK_NAME} does not exist")
    else:
        _delete_stack(ctx, HELPER_STACK_NAME, progress, poll_seconds)
        did(f"deleted stack {HELPER_STACK_NAME}")
    s3 = ctx.client("s3")
    with _step(f"deleting bucket {bucket}"):
        if _bucket_exists(s3, bucket):
            count = _empty_bucket(s3, bucket)
            s3.delete_bucket(Bucket=bucket)
            did(f"deleted bucket {bucket} ({count} object(s))")
        else:
            did(f"bucket {bucket} does not exist")
    return actions
