"""The artifact bucket ``plldb-core-infrastructure-<region>-<account>``: its settings, checked and set.

Public access blocked, default encryption, a TLS-only policy (on https endpoints) and a
lifecycle rule that expires transient payload objects. Each setting is a pair (is it set?,
set it), so planning only reads and executing only fixes what the plan found missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from plldb.cloud.aws import error_code
from plldb.cloud.failures import BootstrapError
from plldb.naming import PAYLOAD_PREFIX

BUCKET_PREFIX = "plldb-core-infrastructure"
LIFECYCLE_RULE_ID = "plldb-expire-payloads"
AWS_MANAGED_S3_KEY = "alias/aws/s3"


def bucket_name(region: str, account_id: str) -> str:
    return f"{BUCKET_PREFIX}-{region}-{account_id}"


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


def _encryption_defaults(s3: Any, bucket: Bucket) -> list[dict[str, Any]]:
    """The bucket's default encryption rules (``ApplyServerSideEncryptionByDefault``)."""
    current = _read(
        lambda: s3.get_bucket_encryption(Bucket=bucket.name),
        {"ServerSideEncryptionConfigurationNotFoundError"},
    )
    rules = (current or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    return [r.get("ApplyServerSideEncryptionByDefault", {}) for r in rules]


def _encryption_ok(s3: Any, bucket: Bucket) -> bool:
    """Any default encryption counts (a customer managed key is refused before: kms_refusal)."""
    return any(default.get("SSEAlgorithm") for default in _encryption_defaults(s3, bucket))


def _aws_managed_key(key: str | None) -> bool:
    """No key id (S3 then uses the AWS managed key ``aws/s3``) or that key's alias."""
    return not key or key == AWS_MANAGED_S3_KEY or key.endswith(f":{AWS_MANAGED_S3_KEY}")


def kms_refusal(s3: Any, bucket: Bucket) -> str | None:
    """Why the bucket's default encryption would keep debugged functions out of it, or None.

    With a customer managed KMS key, every upload and download (the shim's presigned
    transfers of events and results) needs ``kms:GenerateDataKey``/``kms:Decrypt`` on that
    key for the function's role, which plldb does not grant: plldb refuses the bucket
    rather than let every large payload fail. SSE-S3 and the AWS managed key need no
    grant.
    """
    for default in _encryption_defaults(s3, bucket):
        key = default.get("KMSMasterKeyID")
        if str(default.get("SSEAlgorithm", "")).startswith("aws:kms") and not _aws_managed_key(key):
            return (
                f"bucket {bucket.name} encrypts new objects with the customer managed KMS key "
                f"{key} by default; the roles of debugged functions get no rights on it, so "
                "their event and result transfers would be refused. Set its default "
                f"encryption to SSE-S3 (aws s3api put-bucket-encryption --bucket {bucket.name} "
                "--server-side-encryption-configuration "
                "'{\"Rules\":[{\"ApplyServerSideEncryptionByDefault\":{\"SSEAlgorithm\":\"AES256\"}}]}') "
                "or to the AWS managed key (aws:kms without a key id), then run "
                "`plldb bootstrap setup` again"
            )
    return None


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


def bucket_exists(s3: Any, bucket: str) -> bool:
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


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise


def create_bucket(s3: Any, bucket: str, region: str) -> None:
    if region == "us-east-1":  # the one region that refuses a LocationConstraint
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})


def empty_bucket(s3: Any, bucket: str) -> int:
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
