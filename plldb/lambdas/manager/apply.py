"""The manager's changes in AWS: function configuration updates and the shim's role grants.

Every operation is idempotent (an update to the configuration a function already has, a
grant that exists, a revoke of a policy that is gone), so a manager that crashed midway
finishes the job by running again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions

from plldb import naming
from plldb.lambdas import common
from plldb.lambdas.common import log

MAX_WORKERS = 8
UPDATE_POLL_SECONDS = 0.5  # an update usually settles within 1-3 s
UPDATE_WAIT_SECONDS = 120.0


class UpdateFailed(RuntimeError):
    """A function configuration update did not reach LastUpdateStatus Successful."""


def parallel_map(work: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``work`` on every item in threads; the first failure is raised."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items))) as pool:
        return list(pool.map(work, items))


class Functions:
    """Configuration updates that wait until Lambda has applied them."""

    def __init__(self, lambda_: Any) -> None:
        self.lambda_ = lambda_

    def update(self, name: str, subset: dict[str, Any], layers: bool = True) -> None:
        """Apply a subset and wait for LastUpdateStatus Successful (retrying a busy function).

        ``layers=False``: the function's layers are not sent, so they stay as they are.
        """
        arguments: dict[str, Any] = {
            "FunctionName": name,
            "Environment": {"Variables": subset["Environment"]},
            "Timeout": subset["Timeout"],
        }
        if layers:
            arguments["Layers"] = subset["Layers"]
        self.wait_updated(name)
        for attempt in range(6):
            try:
                self.lambda_.update_function_configuration(**arguments)
                break
            except botocore.exceptions.ClientError as exc:
                if common.error_code(exc) != "ResourceConflictException" or attempt == 5:
                    raise
                time.sleep(1 + attempt)
                self.wait_updated(name)
        self.wait_updated(name)

    def wait_updated(self, name: str) -> None:
        deadline = time.monotonic() + UPDATE_WAIT_SECONDS
        while True:
            configuration = self.lambda_.get_function_configuration(FunctionName=name)
            status = configuration.get("LastUpdateStatus", "Successful")
            if status == "Successful":
                return
            if status == "Failed":
                raise UpdateFailed(
                    f"update failed: {configuration.get('LastUpdateStatusReason', 'no reason given')}"
                )
            if time.monotonic() > deadline:
                raise UpdateFailed(f"update still {status} after {UPDATE_WAIT_SECONDS:.0f} s")
            time.sleep(UPDATE_POLL_SECONDS)


class Grants:
    """The shim's managed policy (``PLLDBShimAccess-<region>``) on instrumented functions' roles.

    The manager may attach and detach that one policy and nothing else (the template's
    GrantShimAccess statement is bounded by ``iam:PolicyARN``); it has no inline-policy
    rights at all. Attaching a policy a role already has changes nothing, so a rerun is safe.
    """

    def __init__(self, iam: Any, config: common.Config) -> None:
        self.iam = iam
        self.config = config

    def has_policy(self, role_name: str) -> bool:
        paginator = self.iam.get_paginator("list_attached_role_policies")
        return any(
            policy["PolicyArn"] == self.config.shim_policy_arn
            for page in paginator.paginate(RoleName=role_name)
            for policy in page["AttachedPolicies"]
        )

    def grant(self, roles: Iterable[str]) -> dict[str, str]:
        """Attach the shim's policy to each role (a role may serve many functions).

        Returns why, for each role that cannot take it (at its managed-policy quota): its
        functions are left alone. Roles are handled in parallel: IAM calls take 0.1-0.3 s.
        """
        roles = sorted(roles)
        reasons = parallel_map(self.grant_role, roles)
        return {role: reason for role, reason in zip(roles, reasons, strict=True) if reason}

    def grant_role(self, role_name: str) -> str | None:
        try:
            self.iam.attach_role_policy(RoleName=role_name, PolicyArn=self.config.shim_policy_arn)
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "LimitExceeded":
                raise
            return (
                f"its role {role_name} cannot take another managed policy "
                f"({exc.response['Error'].get('Message', 'LimitExceeded')}): plldb attaches "
                f"{self.config.shim_policy_arn.rsplit('/', 1)[-1]} to it while debugging; "
                "detach a managed policy from that role, or raise the IAM quota "
                "'Managed policies per role', then attach again"
            )
        return None

    def revoke(self, roles: Iterable[str]) -> None:
        parallel_map(self.revoke_role, sorted(roles))

    def revoke_role(self, role_name: str) -> None:
        try:
            self.iam.detach_role_policy(RoleName=role_name, PolicyArn=self.config.shim_policy_arn)
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "NoSuchEntity":
                raise
        self.report_legacy_policy(role_name)

    def report_legacy_policy(self, role_name: str) -> None:
        """Log the inline policy an older plldb put on the role; it is not the manager's to delete.

        plldb before the managed policy wrote an inline ``PLLDBShimAccess``. The manager has
        no right to delete inline policies any more (it could delete any), so an
        administrator removes a leftover one.
        """
        paginator = self.iam.get_paginator("list_role_policies")
        names = [n for page in paginator.paginate(RoleName=role_name) for n in page["PolicyNames"]]
        if naming.SHIM_POLICY_NAME in names:
            log.warning(
                "role %s still has the inline policy %s from an older plldb: delete it with "
                "aws iam delete-role-policy --role-name %s --policy-name %s",
                role_name,
                naming.SHIM_POLICY_NAME,
                role_name,
                naming.SHIM_POLICY_NAME,
            )
