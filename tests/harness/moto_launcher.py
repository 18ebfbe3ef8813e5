"""Run ``moto.server`` made stricter where AWS is stricter than moto (the proving ground).

What the launcher changes in moto, in its own process only:

* **Atomic DynamoDB.** moto applies an UpdateItem attribute by attribute while other
  request threads read the same item, so a concurrent GetItem could see
  ``Status=RESPONDED`` without the response written in the same UpdateItem: a state real
  DynamoDB never shows. DynamoDB requests run one at a time.
* **IAM enforcement, switched on at run time.** Stacks are deployed with enforcement off
  (moto's identity: none); ``POST /plldb-localcloud/iam {"enforce": true}`` then makes
  every request need the signature of an IAM user's access key or of assumed-role
  credentials, and an identity policy that allows the action (moto's own check,
  ``INITIAL_NO_AUTH_ACTION_COUNT`` set in-process). moto checks actions, not resources, for
  every service but S3, IAM/STS roles and Lambda (functions and layers, added by
  tests/harness/localcloud_authz.py): a statement naming a resource counts for a request
  whose resource moto does not determine (the call audit checks resources).
* **Trust policies as AWS reads them.** moto honours only a trust policy that names the
  caller's exact ARN; AWS also honours the account root (``arn:aws:iam::<account>:root``:
  any principal of the account that an identity policy allows) and a role's ARN for its
  sessions. Service principals (``lambda.amazonaws.com``) are honoured for credentials the
  local cloud issues as that service: ``POST /plldb-localcloud/service-credentials``.
* **Credentials expire.** Assumed-role credentials stop working at their ``Expiration``
  (``ExpiredToken``/``ExpiredTokenException``, as AWS answers); ``{"max_session_seconds":
  N}`` caps the duration of every ``sts:AssumeRole`` so that tests see expiry in seconds.
* **Refusals in the service's protocol.** DynamoDB and Lambda get JSON errors
  (``AccessDeniedException``), not moto's XML 403.
* **Presigned S3 URLs** are checked as AWS checks them (signature over the key, expiry,
  the signer's policies): tests/harness/moto_presigned.py.
* **Authorization of APIs the emulators serve** (``@connections``, helper ``Invoke``):
  ``POST /plldb-localcloud/authorize`` checks a request's signature and the signer's
  policies as AWS would (tests/harness/localcloud_authz.py).
* **AWS managed policies in partition ``aws`` only** (every test's account is there). moto
  looks an access key up in the IAM backend of every partition on every request, and
  ``/moto-api/reset`` rebuilds each of them: parsing ~1,600 managed policies six times made
  a reset cost about a second of CPU, that a loaded machine stretched past ten seconds.
* **Indexes that lag**: ``POST /plldb-localcloud/dynamodb {"index_lag_seconds": N}`` hides
  recent writes from GSI queries, as DynamoDB's eventually consistent indexes may
  (tests/harness/dynamodb_index_lag.py).
* **Where a request comes from.** Each function's execution environment reaches AWS through
  an egress proxy of its own (``POST /plldb-localcloud/egress``), so that its requests, and
  only those, carry ``lambda:SourceFunctionArn``; requests of function roles are evaluated
  with conditions and policy variables, which moto ignores (tests/harness/execution_egress.py).
* **Lambda's own refusals** moto lacks (environment size, blocked runtimes) and the
  configuration it drops (Managed Instances, durable functions): tests/harness/moto_lambda.py.
* **A hook for the call audit**: if ``tests.harness.call_recorder`` exists, its
  ``install()`` runs before the server starts.

Usage (the host and port arguments of ``python -m moto.server``)::

    python -m tests.harness.moto_launcher -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.exceptions import AccessDeniedError, JsonRESTError, _RESTError
from moto.core.utils import utcnow
from moto.dynamodb.responses import DynamoHandler
from moto.iam import access_control
from moto.iam.exceptions import NotFoundException
from moto.iam.models import IAMBackend, Role
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.exceptions import S3AccessDeniedError, S3ClientError
from moto.sts.models import STSBackend, sts_backends
from moto.utilities.utils import get_partition
from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

from tests.harness import (
    call_recorder,
    call_resources,
    dynamodb_index_lag,
    execution_egress,
    localcloud_authz,
    moto_lambda,
    moto_presigned,
)

CONTROL_PREFIX = "/plldb-localcloud/"
DEFAULT_ACCOUNT = "123456789012"  # moto's
PARTITION = "aws"
HARNESS_ROLE = "plldb-localcloud-harness"
HARNESS_CREDENTIALS = {  # moto_server.FAKE_CREDENTIALS (not imported: no harness deps here)
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_JSON_SERVICES = {"dynamodb", "awslambda"}  # JSON protocols among the services plldb calls
_DYNAMODB_LOCK = threading.Lock()


class Limits:
    """Run-time settings changed through the control endpoint."""

    max_session_seconds: float | None = None


# --------------------------------------------------------------------------- atomic DynamoDB


def make_atomic(action: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler's ``call_action`` so that one request runs at a time."""

    @functools.wraps(action)
    def atomic(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return action(self)

    return atomic


# --------------------------------------------------------------------------- IAM


def enforce_iam(enforce: bool) -> None:
    """moto's identity checks on (every request from now) or off."""
    if enforce:
        admit_harness()
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0 if enforce else float("inf")
    ActionAuthenticatorMixin.request_count = 0


def admit_harness() -> None:
    """The harness's fixed credentials (``testing``) become a session of an admin role.

    The local cloud deploys stacks, reads configurations and runs the emulators with the
    credentials moto suggests (moto_server.FAKE_CREDENTIALS); under enforcement they stand
    for the account's administrator, as whoever deployed the stacks in AWS. Every other
    identity (plldb's user, the functions' roles) holds only its own policies.
    """
    iam = access_control.iam_backends[DEFAULT_ACCOUNT][PARTITION]
    try:
        role = iam.get_role(HARNESS_ROLE)
    except NotFoundException:
        trust = json.dumps({"Version": "2012-10-17", "Statement": []})
        role = iam.create_role(HARNESS_ROLE, trust, "/", None, "", [], "3600")
        allow_all = {"Effect": "Allow", "Action": "*", "Resource": "*"}
        iam.put_role_policy(
            HARNESS_ROLE,
            "everything",
            json.dumps({"Version": "2012-10-17", "Statement": [allow_all]}),
        )
    sts = sts_backends[DEFAULT_ACCOUNT][PARTITION]
    if sts.get_assumed_role_from_access_key(HARNESS_CREDENTIALS["AWS_ACCESS_KEY_ID"]):
        return
    session = sts.assume_role(
        region_name="us-east-1",
        role_session_name="harness",
        role_arn=role.arn,
        policy=None,
        duration=3600,
        external_id=None,
    )
    session.access_key_id = HARNESS_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    session.secret_access_key = HARNESS_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    session.session_token = HARNESS_CREDENTIALS["AWS_SESSION_TOKEN"]
    session.expiration = utcnow() + datetime.timedelta(days=365)


def _managed_policies_in_aws_only(original: Callable[..., list]) -> Callable[..., list]:
    """``IAMBackend._init_aws_policies`` for partition ``aws`` only (the docstring says why)."""

    @functools.wraps(original)
    def init(self: IAMBackend) -> list:
        return original(self) if self.region_name == PARTITION else []

    return init


def _account_of(arn: str) -> str:
    return arn.split(":")[4] if arn.count(":") >= 5 else ""


def _caller_forms(caller: str) -> set[str]:
    """The principals a trust policy may name for ``caller`` (an ARN or a service name)."""
    if not caller.startswith("arn:"):
        return {caller}
    partition, account = caller.split(":")[1], _account_of(caller)
    forms = {caller, f"arn:{partition}:iam::{account}:root", account}
    if ":assumed-role/" in caller:  # arn:aws:sts::A:assumed-role/ROLE/SESSION
        role = caller.split(":assumed-role/")[1].split("/")[0]
        forms.add(f"arn:{partition}:iam::{account}:role/{role}")
    return forms


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def principal_matches(expected: Any, caller: str) -> bool:
    """Whether a statement's ``Principal`` covers ``caller``, as AWS evaluates it."""
    if expected in (None, "*"):
        return True
    if not isinstance(expected, dict):
        return False
    named = _as_list(expected.get("AWS")) + _as_list(expected.get("Service"))
    return "*" in named or bool(_caller_forms(caller) & set(named))


def _check_principal(self: access_control.IAMPolicyStatement, principal: str) -> bool:
    return principal_matches(self._statement.get("Principal"), principal)


def _element_matches(original: Callable[..., bool]) -> Callable[..., bool]:
    """A resource moto does not determine ("*") matches every ``Resource``: action level."""

    @functools.wraps(original)
    def matches(self: Any, element: str, value: str) -> bool:
        if element == "Resource" and value == "*":
            return True
        return original(self, element, value)

    return matches


def _signed_body(original: Callable[..., Any]) -> Callable[..., Any]:
    """The request moto re-signs, with the body that was signed.

    moto falls back to the parsed parameters when the body is empty (right for a form POST,
    whose body werkzeug consumed); for a Lambda GET those are the headers, so no Lambda GET
    (GetFunctionConfiguration, ...) matched its signature. A body-less method signs b"".
    """

    @functools.wraps(original)
    def create(self: Any) -> Any:
        request = original(self)
        if not self._body and self._method in ("GET", "HEAD", "DELETE"):
            request.data = b""
        return request

    return create


def _documents_as_text(original: Callable[..., None]) -> Callable[..., None]:
    """IAMPolicy of an inline policy CloudFormation stored as a dict (moto keeps it so)."""

    @functools.wraps(original)
    def init(self: Any, policy: Any) -> None:
        if isinstance(policy, dict) and "Statement" in policy:
            policy = json.dumps(policy)
        original(self, policy)

    return init


def _role_with_managed_policies(original: Callable[..., Any]) -> Callable[..., Any]:
    """A CloudFormation role gets its ``ManagedPolicyArns`` attached (moto ignores them)."""

    def create(
        cls: Any,
        resource_name: str,
        cloudformation_json: dict,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        role = original(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        iam = access_control.iam_backends[account_id][role.partition]
        for arn in cloudformation_json["Properties"].get("ManagedPolicyArns", []):
            iam.attach_role_policy(arn, role.name)
        return role

    return classmethod(create)  # type: ignore[return-value]


def _role_deleted_without_managed_policies(original: Callable[..., Any]) -> Callable[..., Any]:
    """Deleting a stack detaches its roles' managed policies first, as CloudFormation does
    (moto would refuse the role: DeleteConflict, "must detach all policies first")."""

    def delete(
        cls: Any,
        resource_name: str,
        cloudformation_json: dict,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        iam = access_control.iam_backends[account_id][get_partition(region_name)]
        for role in list(iam.roles.values()):
            if role.name == resource_name:
                for arn in list(role.managed_policies):
                    iam.detach_role_policy(arn, role.name)
        return original(resource_name, cloudformation_json, account_id, region_name, **kwargs)

    return classmethod(delete)  # type: ignore[return-value]


class ExpiredTokenFailure(access_control.CreateAccessKeyFailure):
    """Assumed-role credentials used after their Expiration."""

    def __init__(self) -> None:
        super().__init__(reason="ExpiredToken")


def _expiring(original: Callable[..., None]) -> Callable[..., None]:
    """AssumedRoleAccessKey that refuses credentials past their Expiration."""

    @functools.wraps(original)
    def init(self: Any, account_id: str, partition: str, access_key_id: str, headers: Any) -> None:
        original(self, account_id, partition, access_key_id, headers)
        role = sts_backends[account_id][partition].get_assumed_role_from_access_key(access_key_id)
        if role is not None and utcnow() >= role.expiration:
            raise ExpiredTokenFailure()

    return init


class ExpiredTokenError(_RESTError):
    code = 400

    def __init__(self) -> None:
        super().__init__("ExpiredToken", "The security token included in the request is expired")


class S3ExpiredTokenError(S3ClientError):
    def __init__(self) -> None:
        super().__init__("ExpiredToken", "The provided token has expired.")


def _raise_expired(
    original: Callable[..., None], error: Callable[[], Exception]
) -> Callable[..., None]:
    @functools.wraps(original)
    def raise_invalid(self: Any, reason: str) -> None:
        if reason == "ExpiredToken":
            raise error()
        original(self, reason)

    return raise_invalid


def _capped_assume_role(original: Callable[..., Any]) -> Callable[..., Any]:
    """sts:AssumeRole with its duration capped by :attr:`Limits.max_session_seconds`."""

    @functools.wraps(original)
    def assume_role(self: STSBackend, **kwargs: Any) -> Any:
        role = original(self, **kwargs)
        cap = Limits.max_session_seconds
        if cap is not None and kwargs.get("duration", 0) > cap:
            role.expiration = utcnow() + datetime.timedelta(seconds=cap)
        return role

    return assume_role


def _json_refusals(original: Callable[..., None]) -> Callable[..., None]:
    """Authentication and authorization errors in the JSON protocols' shape."""

    @functools.wraps(original)
    def authorize(self: Any, resource: str = "*") -> None:
        try:
            original(self, resource)
        except _RESTError as exc:
            if getattr(self, "service_name", "") not in _JSON_SERVICES:
                raise
            error = JsonRESTError(json_error_code(exc.error_type), exc.message)
            error.code = exc.code
            raise error from exc

    return authorize


def _conditions_enforced(original: Callable[..., None]) -> Callable[..., None]:
    """After moto's own check, a function role's request is also held to the conditions and
    policy variables of its policies (execution_egress.refusal), as AWS holds it."""

    @functools.wraps(original)
    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        original(self, iam_request_cls, resource)
        if not localcloud_authz.enforcing():
            return
        why = function_role_refusal(self, resource)
        if why is None:
            return
        if iam_request_cls is access_control.S3IAMRequest:
            raise S3AccessDeniedError()
        raise AccessDeniedError(user_arn=why[0], action=why[1])

    return authorize


_principals: dict[str, dict[str, Any]] = {}  # access key -> who holds it (never changes)


def _principal_of(handler: Any, key: str) -> dict[str, Any]:
    """call_recorder.identify, once per access key: it scans the stacks for a role's."""
    if key not in _principals:
        principal = call_recorder.identify(handler, key)
        if principal["kind"] == "unknown":
            return principal  # not cached: the key may be issued in a moment
        _principals[key] = principal
    return _principals[key]


def function_role_refusal(handler: Any, resource: str) -> tuple[str, str] | None:
    """(principal ARN, refusal) when a function role's request breaks a condition."""
    credential = call_recorder.credential_of(handler.headers.get("Authorization", ""))
    if not credential:
        return None
    principal = _principal_of(handler, credential[0])
    if principal["kind"] != "role":
        return None
    documents = execution_egress.as_documents(call_recorder.moto_policies(handler, principal))
    try:
        calls = call_resources.derive(handler, credential[3], resource)
    except (LookupError, ValueError):
        return None
    context = {
        **call_recorder.global_context(handler, principal),
        **execution_egress.condition_context(handler.headers, principal),
    }
    why = execution_egress.refusal(principal, documents, calls, context)
    return (principal["session_arn"], why) if why else None


def json_error_code(code: str) -> str:
    """AWS's JSON-protocol name for a query-protocol error code."""
    if code == "InvalidClientTokenId":
        return "UnrecognizedClientException"
    return code if code.endswith("Exception") else f"{code}Exception"


def issue_service_credentials(
    service: str, role_arn: str, session_name: str, duration_seconds: int
) -> dict[str, str]:
    """Credentials of ``role_arn`` as ``service`` gets them (Lambda for an execution role).

    Refused, as by AWS, unless the role's trust policy allows ``service`` to assume it.
    """
    account, partition = _account_of(role_arn), role_arn.split(":")[1]
    iam = access_control.iam_backends[account][partition]
    role = iam.get_role_by_arn(role_arn)
    trust = access_control.IAMPolicy(role.assume_role_policy_document)
    verdict = trust.is_action_permitted("sts:AssumeRole", role_arn, service)
    if verdict != access_control.PermissionResult.PERMITTED:
        raise PermissionError(f"the trust policy of {role_arn} does not allow {service}")
    assumed = sts_backends[account][partition].assume_role(
        region_name="us-east-1",
        role_session_name=session_name,
        role_arn=role_arn,
        policy=None,
        duration=duration_seconds,
        external_id=None,
    )
    assumed.expiration = utcnow() + datetime.timedelta(seconds=duration_seconds)  # no test cap
    return {
        "AWS_ACCESS_KEY_ID": assumed.access_key_id,
        "AWS_SECRET_ACCESS_KEY": assumed.secret_access_key,
        "AWS_SESSION_TOKEN": assumed.session_token,
        "Expiration": assumed.expiration.replace(tzinfo=datetime.timezone.utc).isoformat(),
    }


def patch_moto() -> None:
    """Apply every change the module docstring lists (once per process)."""
    DynamoHandler.call_action = make_atomic(dynamodb_index_lag.lagging(DynamoHandler.call_action))  # type: ignore[method-assign]
    statement = access_control.IAMPolicyStatement
    statement._check_principal = _check_principal  # type: ignore[method-assign]
    statement._check_element_matches = _element_matches(statement._check_element_matches)  # type: ignore[method-assign]
    base = access_control.IAMRequestBase
    base._create_aws_request = _signed_body(base._create_aws_request)  # type: ignore[method-assign]
    policy = access_control.IAMPolicy
    policy.__init__ = _documents_as_text(policy.__init__)  # type: ignore[method-assign]
    Role.create_from_cloudformation_json = _role_with_managed_policies(  # type: ignore[method-assign]
        Role.create_from_cloudformation_json
    )
    Role.delete_from_cloudformation_json = _role_deleted_without_managed_policies(  # type: ignore[method-assign]
        Role.delete_from_cloudformation_json
    )
    IAMBackend._init_aws_policies = _managed_policies_in_aws_only(  # type: ignore[method-assign]
        IAMBackend._init_aws_policies
    )
    key = access_control.AssumedRoleAccessKey
    key.__init__ = _expiring(key.__init__)  # type: ignore[method-assign]
    for request, error in (
        (access_control.IAMRequest, ExpiredTokenError),
        (access_control.S3IAMRequest, S3ExpiredTokenError),
    ):
        request._raise_invalid_access_key = _raise_expired(request._raise_invalid_access_key, error)  # type: ignore[method-assign]
    STSBackend.assume_role = _capped_assume_role(STSBackend.assume_role)  # type: ignore[method-assign]
    localcloud_authz.install()
    mixin = ActionAuthenticatorMixin
    mixin._authenticate_and_authorize_action = _conditions_enforced(  # type: ignore[method-assign]
        mixin._authenticate_and_authorize_action
    )
    mixin._authenticate_and_authorize_normal_action = _json_refusals(  # type: ignore[method-assign]
        mixin._authenticate_and_authorize_normal_action
    )
    moto_presigned.install()
    moto_lambda.install()


# --------------------------------------------------------------------------- control endpoint


def control(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Serve ``POST /plldb-localcloud/<path>``; the answer's JSON."""
    if path == "iam":
        if "enforce" in body:
            enforce_iam(bool(body["enforce"]))
        if "max_session_seconds" in body:
            Limits.max_session_seconds = body["max_session_seconds"]
        return {
            "enforce": localcloud_authz.enforcing(),
            "max_session_seconds": Limits.max_session_seconds,
        }
    if path == "authorize":
        return localcloud_authz.authorize(body)
    if path == "dynamodb":
        return dynamodb_index_lag.configure(body)
    if path == "egress":
        return {"proxy_url": execution_egress.proxy_url(body["function_arn"])}
    if path == "service-credentials":
        return issue_service_credentials(
            body["service"], body["role_arn"], body["session_name"], int(body["duration_seconds"])
        )
    raise LookupError(f"no control endpoint {CONTROL_PREFIX}{path}")


def with_control(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """The moto WSGI app with the control endpoint in front."""

    def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CONTROL_PREFIX):
            return app(environ, start_response)
        request = Request(environ)
        try:
            answer = control(path[len(CONTROL_PREFIX) :], json.loads(request.get_data() or b"{}"))
            response = Response(json.dumps(answer), 200, mimetype="application/json")
        except (LookupError, KeyError, ValueError, PermissionError) as exc:
            status = 403 if isinstance(exc, PermissionError) else 400
            response = Response(
                json.dumps({"error": str(exc)}), status, mimetype="application/json"
            )
        return response(environ, start_response)

    return wsgi


def install_call_recorder() -> None:
    """The call audit's recorder (tests/harness/call_recorder.py), when it exists."""
    try:
        recorder = importlib.import_module("tests.harness.call_recorder")
    except ModuleNotFoundError as exc:
        if exc.name != "tests.harness.call_recorder":
            raise
        return
    recorder.install()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("MOTO_PORT", str(args.port))  # as moto.server does: URLs it builds
    # AWS managed policies exist (SAM roles attach AWSLambdaBasicExecutionRole).
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    patch_moto()
    install_call_recorder()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        with_control(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
