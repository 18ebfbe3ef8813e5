"""IAM principals of the local cloud, for tests that act as someone other than the harness.

Attack tests need real principals: an IAM user holding exactly some policy (a developer
allowed to change one stack, an attacker with read-only Lambda access), and the role
sessions those users can open. Under the moto launcher's IAM enforcement each of them gets
exactly what its policies allow, so a test that acts as one proves what that principal can
and cannot do. ``plldb`` itself runs as one of these in the local cloud
(tests/harness/localcloud.py, ``developer_credentials``).

The IAM client passed to :func:`create_user` must be allowed to create users (the
harness's credentials are); the principal's clients go to that client's endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import boto3

from tests.harness.moto_server import REGION

ASSUME_ROLES_POLICY = "assume-roles"


class EndpointSession(boto3.Session):
    """A boto3 session whose clients all use one endpoint (as AWS_ENDPOINT_URL would)."""

    def __init__(self, endpoint_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint_url = endpoint_url

    def client(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("endpoint_url", self.endpoint_url)
        return super().client(*args, **kwargs)


@dataclass(frozen=True)
class Principal:
    """Who a test acts as: its ARN, its credentials and where its clients go."""

    arn: str
    # As a process's environment holds them: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    # AWS_SESSION_TOKEN (role sessions only), AWS_DEFAULT_REGION, AWS_REGION.
    credentials: dict[str, str]
    endpoint_url: str

    def session(self) -> boto3.Session:
        """A boto3 session of this principal whose clients go to the local cloud."""
        return EndpointSession(
            self.endpoint_url,
            aws_access_key_id=self.credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.credentials["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=self.credentials.get("AWS_SESSION_TOKEN"),
            region_name=self.credentials["AWS_REGION"],
        )

    def client(self, service: str) -> Any:
        return self.session().client(service)


def _document(policy: dict[str, Any] | str) -> str:
    return policy if isinstance(policy, str) else json.dumps(policy)


def create_user(
    iam: Any,
    name: str,
    policy: dict[str, Any] | str,
    assume_roles: Iterable[str] = (),
    policy_name: str | None = None,
) -> Principal:
    """An IAM user holding ``policy`` (inline, named ``policy_name`` or ``name``), allowed
    ``sts:AssumeRole`` on the ``assume_roles`` ARNs too, with a fresh access key.

    Whether a role lets the user in is still up to the role's trust policy, as in AWS.
    """
    user_arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(
        UserName=name, PolicyName=policy_name or name, PolicyDocument=_document(policy)
    )
    roles = list(assume_roles)
    if roles:
        statement = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles}
        iam.put_user_policy(
            UserName=name,
            PolicyName=ASSUME_ROLES_POLICY,
            PolicyDocument=_document({"Version": "2012-10-17", "Statement": [statement]}),
        )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    credentials = {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
    return Principal(user_arn, credentials, iam.meta.endpoint_url)


def assume_role(
    principal: Principal, role_arn: str, session_name: str, duration_seconds: int = 3600
) -> Principal:
    """A session of ``role_arn`` opened by ``principal`` with its own credentials (refused,
    as by STS, unless its policies and the role's trust policy both allow it)."""
    answer = principal.client("sts").assume_role(
        RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=duration_seconds
    )
    issued = answer["Credentials"]
    credentials = {
        "AWS_ACCESS_KEY_ID": issued["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": issued["SecretAccessKey"],
        "AWS_SESSION_TOKEN": issued["SessionToken"],
        "AWS_DEFAULT_REGION": principal.credentials["AWS_DEFAULT_REGION"],
        "AWS_REGION": principal.credentials["AWS_REGION"],
    }
    return Principal(answer["AssumedRoleUser"]["Arn"], credentials, principal.endpoint_url)
