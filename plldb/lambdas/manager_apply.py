"""The manager's changes in AWS: function configuration updates and the shim's role grants.

Every operation is idempotent (an update to the configuration a function already has, a
grant that exists, a revoke of a policy that is gone), so a manager that crashed midway
finishes the job by running again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.exceptions

from plldb import protocol
from plldb.lambdas import common

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

    def update(self, name: str, subset: dict[str, Any]) -> None:
        """Apply a subset and wait for LastUpdateStatus Successful (retrying a busy function)."""
        self.wait_updated(name)
        for attempt in range(6):
            try:
                self.lambda_.update_function_configuration(
                    FunctionName=name,
                    Environment={"Variables": subset["Environment"]},
                    Layers=subset["Layers"],
                    Timeout=subset["Timeout"],
                )
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
    """The shim's inline policy (PLLDBShimAccess) on the roles of instrumented functions."""

    def __init__(self, iam: Any, config: common.Config) -> None:
        self.iam = iam
        self.config = config

    def has_policy(self, role_name: str) -> bool:
        try:
            self.iam.get_role_policy(RoleName=role_name, PolicyName=protocol.SHIM_POLICY_NAME)
            return True
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) == "NoSuchEntity":
                return False
            raise

    def grant(self, arn_by_role: dict[str, str]) -> None:
        """Put the shim's policy on each role that lacks it (a role may serve many functions).

        Roles are handled in parallel: IAM calls take 0.1-0.3 s each in AWS.
        """
        parallel_map(lambda item: self.grant_role(*item), arn_by_role.items())

    def grant_role(self, role_name: str, function_arn: str) -> None:
        if not self.has_policy(role_name):
            self.iam.put_role_policy(
                RoleName=role_name,
                PolicyName=protocol.SHIM_POLICY_NAME,
                PolicyDocument=json.dumps(self.shim_policy(function_arn)),
            )

    def revoke(self, roles: Iterable[str]) -> None:
        parallel_map(self.revoke_role, sorted(roles))

    def revoke_role(self, role_name: str) -> None:
        try:
            self.iam.delete_role_policy(RoleName=role_name, PolicyName=protocol.SHIM_POLICY_NAME)
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "NoSuchEntity":
                raise

    def shim_policy(self, function_arn: str) -> dict[str, Any]:
        """What the shim does in the function: its tables, the connection, the payloads."""
        _, partition, _, region, account = function_arn.split(":")[:5]
        table = f"arn:{partition}:dynamodb:{region}:{account}:table"
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
                    "Resource": f"{table}/{self.config.debugger_table}",
                },
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:GetItem"],
                    "Resource": f"{table}/{self.config.sessions_table}",
                },
                {
                    "Effect": "Allow",
                    "Action": ["execute-api:ManageConnections"],
                    "Resource": self.config.connections_arn,
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:GetObject"],
                    "Resource": f"arn:{partition}:s3:::{self.config.payload_bucket}/{protocol.PAYLOAD_PREFIX}*",
                },
            ],
        }
