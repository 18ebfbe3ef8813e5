"""Resource-level IAM checks in the local cloud, where AWS makes them and moto does not.

Runs inside the moto launcher's process (tests/harness/moto_launcher.py). An attack test
proves something only if the local cloud refuses what AWS refuses; where moto's own
enforcement is laxer than AWS, this module closes the gap:

* **Lambda resources.** moto authorises Lambda requests on the resource ``*``, so a
  statement allowing ``lambda:TagResource`` on ``function:stackA-*`` also lets its holder
  tag ``stackB-Fn``. :func:`install` makes moto authorise each Lambda request on the ARN
  AWS authorises it on (the function's, qualified when the request names a qualifier; the
  layer version's; the ARN a tagging call names), derived by the call audit's own mapping
  (tests/harness/call_resources.py) so that the two never disagree. Conditions are not
  evaluated here (the call audit does that).
* **APIs the emulators serve themselves.** The gateway emulator answers the API Gateway
  management API (``@connections``) and ``Invoke`` of the helper Lambdas without moto.
  :func:`authorize` (``POST /plldb-localcloud/authorize``) tells it, per request, what AWS
  would answer: the SigV4 signature checked against the credentials moto holds (IAM users'
  access keys, STS credentials until their expiry) and within 15 minutes of now, and the
  action checked on the resource against the signer's policies, with moto's machinery.
"""

from __future__ import annotations

import base64
import datetime
import urllib.parse
from types import SimpleNamespace
from typing import Any

from moto import settings
from moto.awslambda.responses import LambdaResponse
from moto.core.exceptions import _RESTError
from moto.core.utils import utcnow
from moto.iam import access_control
from werkzeug.datastructures import Headers

from tests.harness import call_recorder, call_resources, execution_egress

# AWS refuses a signature whose X-Amz-Date is further than this from its clock.
SIGNATURE_SKEW = datetime.timedelta(minutes=15)
# REST-JSON error codes (API Gateway's management API, Lambda), with moto's for the same.
MISSING_TOKEN = "MissingAuthenticationTokenException"
INCOMPLETE_SIGNATURE = "IncompleteSignatureException"
SIGNATURE_MISMATCH = "InvalidSignatureException"
ACCESS_DENIED = "AccessDeniedException"
_REST_JSON_CODES = {
    "InvalidClientTokenId": "UnrecognizedClientException",
    "ExpiredToken": "ExpiredTokenException",
}


def enforcing() -> bool:
    """Whether the launcher's IAM enforcement is on (``POST /plldb-localcloud/iam``)."""
    return settings.INITIAL_NO_AUTH_ACTION_COUNT == 0


# --------------------------------------------------------------------------- Lambda in moto


def lambda_resource(handler: Any) -> str:
    """The ARN AWS authorises this Lambda request on; ``*`` for account-level calls.

    ``handler`` is moto's LambdaResponse for the request, set up and about to be
    authorised. A request the mapping does not know (or cannot parse: moto refuses it
    next) stays on ``*``, i.e. action level, as before.
    """
    try:
        calls = call_resources.derive(handler, "lambda", "*")
    except (LookupError, ValueError):
        return "*"
    return calls[0][1]


def install() -> None:
    """moto authorises every Lambda request on :func:`lambda_resource` (BaseResponse's
    ``call_action`` asks ``_determine_resource`` when a response class has one)."""
    LambdaResponse._determine_resource = lambda_resource  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- emulator-served APIs


class Refused(Exception):
    """AWS's refusal of a request: its REST-JSON error code, its message, who signed it."""

    def __init__(self, code: str, message: str, principal: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.principal = code, message, principal


def authorize(request: dict[str, Any]) -> dict[str, Any]:
    """What AWS would answer ``request`` (an API an emulator serves), as the emulator needs it.

    ``request``: ``method``, ``url`` (the path and query as received), ``headers`` (name ->
    value, as received: ``Host`` included, it is signed), ``body`` (base64), ``action``
    (e.g. ``execute-api:ManageConnections``) and ``resource`` (its ARN). The answer:
    ``allowed``, ``principal_arn`` (the signer; None when unchecked or unknown), and when
    refused the REST-JSON ``error_code`` and the ``message`` AWS gives. With enforcement off
    every request is allowed, as moto then allows every call.
    """
    if not enforcing():
        return {"allowed": True, "principal_arn": None, "error_code": None, "message": None}
    try:
        principal = _check(request)
    except Refused as refused:
        return {
            "allowed": False,
            "principal_arn": refused.principal,
            "error_code": refused.code,
            "message": refused.message,
        }
    return {"allowed": True, "principal_arn": principal, "error_code": None, "message": None}


def _check(request: dict[str, Any]) -> str:
    """The signer's ARN, once its signature and its policies pass; :class:`Refused` if not."""
    action, resource = request["action"], request["resource"]
    headers = Headers(list(request["headers"].items()))
    if "Authorization" not in headers:
        raise Refused(MISSING_TOKEN, "Missing Authentication Token")
    _check_date(headers.get("X-Amz-Date", ""))
    url = urllib.parse.urlsplit(request["url"])
    try:
        signed = access_control.IAMRequest(
            account_id=resource.split(":")[4],
            method=request["method"],
            path=url.path + (f"?{url.query}" if url.query else ""),
            data={},
            body=base64.b64decode(request.get("body") or ""),
            headers=headers,  # type: ignore[arg-type]
            action=action.partition(":")[2],
        )
    except _RESTError as exc:  # unknown key, wrong or expired token
        raise Refused(_REST_JSON_CODES.get(exc.error_type, exc.error_type), exc.message) from exc
    except (IndexError, KeyError) as exc:  # no Credential=.../region/service/... scope
        raise Refused(INCOMPLETE_SIGNATURE, f"Authorization header is malformed: {exc}") from exc
    principal = signed._access_key.arn
    signed._action = action  # moto names it after the signing service, which may differ
    try:
        signed.check_signature()
    except _RESTError as exc:
        raise Refused(SIGNATURE_MISMATCH, exc.message, principal) from exc
    message = f"User: {principal} is not authorized to perform: {action} on resource: {resource}"
    try:
        signed.check_action_permitted(resource)
    except _RESTError as exc:
        raise Refused(ACCESS_DENIED, message, principal) from exc
    if _breaks_conditions(headers, credential_key(headers), action, resource):
        raise Refused(ACCESS_DENIED, message, principal)
    return principal


def credential_key(headers: Headers) -> str:
    """The access key id of a SigV4 ``Authorization`` header."""
    credential = call_recorder.credential_of(headers.get("Authorization", ""))
    return credential[0] if credential else ""


def _breaks_conditions(headers: Headers, key: str, action: str, resource: str) -> bool:
    """A function role's request held to its policies' conditions, as moto's own requests
    are (execution_egress.refusal): moto's check above ignores them."""
    where = SimpleNamespace(current_account=resource.split(":")[4], partition="aws",
                            region=resource.split(":")[3])
    principal = call_recorder.identify(where, key)
    if principal["kind"] != "role":
        return False
    documents = execution_egress.as_documents(call_recorder.moto_policies(where, principal))
    context = {
        **call_recorder.global_context(where, principal),
        **execution_egress.condition_context(headers, principal),
    }
    return execution_egress.refusal(principal, documents, [(action, resource, {})], context) is not None


def _check_date(stamp: str) -> None:
    """AWS refuses a signature made more than 15 minutes from its clock (a replay, say)."""
    try:
        signed_at = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    except ValueError as exc:
        raise Refused(
            INCOMPLETE_SIGNATURE, f"X-Amz-Date is missing or malformed: {stamp!r}"
        ) from exc
    now = utcnow().replace(tzinfo=None)
    if abs(now - signed_at) > SIGNATURE_SKEW:
        raise Refused(
            SIGNATURE_MISMATCH,
            f"Signature expired: {stamp} is now earlier than {now - SIGNATURE_SKEW:%Y%m%dT%H%M%SZ}"
            f" ({now:%Y%m%dT%H%M%SZ} - 15 min.)",
        )
