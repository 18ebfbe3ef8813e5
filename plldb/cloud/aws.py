"""The one place that creates boto3 sessions and clients.

Every AWS call of the local tool goes through here so that profile, region and endpoint
handling is uniform. Endpoints are never passed explicitly: botocore honours
``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` itself, which is how the local
cloud (moto and the emulators) is found exactly the way AWS is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.session

log = logging.getLogger(__name__)

_CLIENT_CONFIG = botocore.config.Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=5,
    read_timeout=60,
)


class AwsAccessError(Exception):
    """Credentials are missing, expired or not allowed in the chosen region."""


@dataclass
class AwsContext:
    """Profile and region chosen on the command line, and the session built from them."""

    profile: str | None = None
    region: str | None = None
    _session: boto3.Session | None = field(default=None, repr=False)

    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            try:
                self._session = boto3.Session(profile_name=self.profile, region_name=self.region)
            except botocore.exceptions.ProfileNotFound as exc:
                raise AwsAccessError(
                    f"AWS profile {self.profile!r} not found: check ~/.aws/config or --profile"
                ) from exc
        return self._session

    @property
    def region_name(self) -> str:
        region = self.session.region_name
        if not region:
            raise AwsAccessError(
                "No AWS region configured: pass --region or set AWS_DEFAULT_REGION / a profile region"
            )
        return region

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` in the chosen profile and region."""
        return self.session.client(service, region_name=self.region_name, config=_CLIENT_CONFIG)

    def account_id(self) -> str:
        """The caller's account id; the first call that proves the credentials work."""
        return caller_identity(self)["Account"]

    def assumed(
        self, role_arn: str, session_name: str, duration_seconds: int | None = None
    ) -> AwsContext:
        """A context whose calls run under ``role_arn``, assumed with this context's credentials.

        The role's credentials are refreshed by botocore before they expire (role chaining
        caps them at one hour, API Gateway keeps a connection two): the first set is fetched
        here, so a refusal shows at once, and botocore fetches the next ones with this
        context's own (possibly refreshed, e.g. SSO) credentials. ``duration_seconds`` is
        the role session's lifetime; None takes the role's default (one hour).
        """
        extra_args: dict[str, Any] = {"RoleSessionName": session_name}
        if duration_seconds is not None:
            extra_args["DurationSeconds"] = duration_seconds
        source = self.session._session  # the botocore session: its client creator and credentials
        fetcher = botocore.credentials.AssumeRoleCredentialFetcher(
            client_creator=source.create_client,
            source_credentials=source.get_credentials(),
            role_arn=role_arn,
            extra_args=extra_args,
        )
        credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
            metadata=fetcher.fetch_credentials(),
            refresh_using=fetcher.fetch_credentials,
            method="assume-role",
        )
        role_session = botocore.session.Session()
        role_session._credentials = credentials  # botocore's documented-by-use hook for custom providers
        session = boto3.Session(botocore_session=role_session, region_name=self.region_name)
        return AwsContext(profile=None, region=self.region_name, _session=session)


def caller_identity(ctx: AwsContext) -> dict[str, str]:
    """STS GetCallerIdentity, with credential problems turned into one clear error."""
    try:
        return ctx.client("sts").get_caller_identity()
    except botocore.exceptions.NoCredentialsError as exc:
        raise AwsAccessError(
            "No AWS credentials found: run `aws configure`, `aws sso login`, or pass --profile"
        ) from exc
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise AwsAccessError(describe_access_error(code, ctx.region_name)) from exc
    except botocore.exceptions.EndpointConnectionError as exc:
        raise AwsAccessError(
            f"Cannot reach AWS in region {ctx.region_name!r}: check --region and your network"
        ) from exc


def partition_of(arn: str) -> str:
    """The partition of an ARN (``aws``, ``aws-cn``, ``aws-us-gov``): ARNs plldb writes use it."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or not parts[1]:
        raise ValueError(f"not an ARN: {arn!r}")
    return parts[1]


def describe_access_error(code: str, region: str) -> str:
    """One line that tells the user what to do about an STS/credential error code."""
    if code in {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}:
        return "Your AWS credentials have expired: refresh them (e.g. `aws sso login`) and retry"
    if code in {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"}:
        return "Your AWS credentials are not valid: check the access key or --profile"
    if code in {"AccessDenied", "AccessDeniedException", "OptInRequired"}:
        return f"No access in region {region!r}: enable the region or choose another with --region"
    return f"AWS refused the credentials ({code}): check --profile and --region"


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, or '' for anything else."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""
