"""The IAM action and resource ARN(s) one request to moto is authorised as, per service.

Used by tests/harness/call_recorder.py inside the moto server process (``handler`` is
moto's response object for the request). What a service's requests are authorised as is
taken from the AWS Service Authorization Reference: e.g. a DynamoDB ``Query`` of an index
is a request on the index's ARN, ``TransactWriteItems`` is one ``PutItem``/``UpdateItem``/
``DeleteItem``/``ConditionCheckItem`` per item, ``Invoke`` is ``lambda:InvokeFunction``
on the function's (qualified) ARN, S3's ``HeadObject`` is ``s3:GetObject``. A request this
module cannot map raises ``LookupError`` (recorded, and a violation for a real principal).
"""

from __future__ import annotations

import json
import re
import urllib.parse
import xml.etree.ElementTree as ElementTree
from typing import Any

Call = tuple[str, str, dict[str, Any]]  # (service:Action, resource ARN, extra context)


def derive(handler: Any, service: str, moto_resource: str) -> list[Call]:
    """The IAM (action, resource, context) triples one request is authorised as."""
    deriver = _DERIVERS.get(service)
    if deriver is None:
        raise LookupError(f"no ARN derivation for service {service!r}")
    return deriver(handler, moto_resource)


def _param(handler: Any, name: str) -> str | None:
    """A parameter of a query-protocol request (IAM, STS, CloudFormation: the form body)."""
    value = handler.querystring.get(name)
    return value[0] if isinstance(value, list) else value


def _url_query(handler: Any) -> dict[str, list[str]]:
    """The URL's own query (moto fills ``querystring`` with the headers when it is empty)."""
    return urllib.parse.parse_qs(urllib.parse.urlparse(handler.uri).query, keep_blank_values=True)


def _json_body(handler: Any) -> dict[str, Any]:
    raw = handler.raw_body
    if not raw:
        return {}
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _arn(handler: Any, service: str, rest: str, region: bool = True) -> str:
    where = f"{handler.region}:" if region else ":"
    return f"arn:{handler.partition}:{service}:{where}{handler.current_account}:{rest}"


_DYNAMODB_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _dynamodb(handler: Any, _: str) -> list[Call]:
    action, body = handler._get_action(), _json_body(handler)

    def table(name: str, index: str | None = None) -> str:
        arn = _arn(handler, "dynamodb", f"table/{name}")
        return f"{arn}/index/{index}" if index else arn

    if action in ("TransactWriteItems", "TransactGetItems"):
        return [
            (f"dynamodb:{_DYNAMODB_TRANSACT[kind]}", table(detail["TableName"]), {})
            for item in body["TransactItems"]
            for kind, detail in item.items()
        ]
    if action in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{action}", table(name), {}) for name in body["RequestItems"]]
    if "TableName" in body:
        return [(f"dynamodb:{action}", table(body["TableName"], body.get("IndexName")), {})]
    if action in ("ListTables", "DescribeLimits", "DescribeEndpoints"):
        return [(f"dynamodb:{action}", "*", {})]
    raise LookupError(f"no ARN derivation for dynamodb:{action}")


_LAMBDA_ACTIONS = {"Invoke": "InvokeFunction"}  # API operation -> IAM action, where they differ
_LAMBDA_FUNCTION = re.compile(r"/functions/(?P<name>[^/]+)")
_LAMBDA_LAYER = re.compile(r"/layers/(?P<name>[^/]+)/versions(?:/(?P<version>\d+))?")
_LAMBDA_TAGS = re.compile(r"/tags/(?P<arn>.+)$")


def _lambda(handler: Any, _: str) -> list[Call]:
    operation = handler._get_action()
    action = f"lambda:{_LAMBDA_ACTIONS.get(operation, operation)}"
    path = urllib.parse.unquote(handler.path)
    configures = operation in ("CreateFunction", "UpdateFunctionConfiguration")
    body = _json_body(handler) if configures else {}  # (an Invoke's body is the event)
    context: dict[str, Any] = {}
    if "Layers" in body:
        context["lambda:Layer"] = list(body["Layers"])
    if (match := _LAMBDA_FUNCTION.search(path)) or "FunctionName" in body:
        name = match.group("name") if match else body["FunctionName"]
        qualifier = _url_query(handler).get("Qualifier", [None])[0]
        arn = _function_arn(handler, name, qualifier)
        return [(action, arn, {**context, **_function_tags(handler, arn)}), *_implied(body)]
    if match := _LAMBDA_LAYER.search(path):
        name = match.group("name")
        arn = name if name.startswith("arn:") else _arn(handler, "lambda", f"layer:{name}")
        version = match.group("version")
        return [(action, f"{arn}:{version}" if version else arn, context)]
    if match := _LAMBDA_TAGS.search(path):
        arn = match.group("arn")
        return [
            (
                action,
                arn,
                {**context, **_tag_keys(handler, operation), **_function_tags(handler, arn)},
            )
        ]
    if operation in (
        "ListFunctions",
        "ListLayers",
        "ListEventSourceMappings",
        "GetAccountSettings",
    ):
        return [(action, "*", context)]
    raise LookupError(f"no ARN derivation for {action} ({handler.method} {path})")


def _tag_keys(handler: Any, operation: str) -> dict[str, Any]:
    """``aws:TagKeys``: the tag keys a TagResource (body) or UntagResource (query) names."""
    if operation == "TagResource":
        return {"aws:TagKeys": sorted(_json_body(handler).get("Tags", {}))}
    if operation == "UntagResource":
        return {"aws:TagKeys": _url_query(handler).get("tagKeys", [])}
    return {}


def _implied(configuration: dict[str, Any]) -> list[Call]:
    """What Lambda also authorises when a function is configured: the caller must be
    allowed ``lambda:GetLayerVersion`` on every layer in the list it sends (the layers the
    function already has included) and ``iam:PassRole`` on a role it sets."""
    calls: list[Call] = [
        ("lambda:GetLayerVersion", arn, {}) for arn in configuration.get("Layers", [])
    ]
    if "Role" in configuration:
        passed = {"iam:PassedToService": "lambda.amazonaws.com"}
        calls.append(("iam:PassRole", configuration["Role"], passed))
    return calls


def _function_arn(handler: Any, name: str, qualifier: str | None) -> str:
    """Lambda accepts a name, ``name:qualifier``, a partial ARN or a full ARN."""
    parts = name.split(":")
    if name.startswith("arn:"):
        name, rest = parts[6], parts[7:]
    elif len(parts) >= 3 and parts[1] == "function":  # ACCOUNT:function:NAME[:QUALIFIER]
        name, rest = parts[2], parts[3:]
    else:
        name, rest = parts[0], parts[1:]
    qualifier = rest[0] if rest else qualifier
    arn = _arn(handler, "lambda", f"function:{name}")
    return f"{arn}:{qualifier}" if qualifier else arn


def _function_tags(handler: Any, arn: str) -> dict[str, Any]:
    from moto.awslambda.utils import get_backend  # the Docker-less backend when configured

    try:
        function = get_backend(handler.current_account, handler.region).get_function(
            arn.split(":")[6]
        )
    except Exception:  # noqa: BLE001 - no such function: the call fails in moto, no tags
        return {}
    return {f"aws:ResourceTag/{k}": v for k, v in (function.tags or {}).items()}


def _iam(handler: Any, _: str) -> list[Call]:
    from moto.iam.models import iam_backends

    action = f"iam:{handler._get_action()}"
    backend = iam_backends[handler.current_account][handler.partition]
    policy_arn = _param(handler, "PolicyArn")
    if role_name := _param(handler, "RoleName"):
        # Attach/DetachRolePolicy (and the user and group ones) carry the policy's ARN
        context = {"iam:PolicyARN": policy_arn} if policy_arn else {}
        try:
            role = backend.get_role(role_name)
        except Exception:  # noqa: BLE001 - no such role: the default path
            return [(action, _arn(handler, "iam", f"role/{role_name}", region=False), context)]
        tags = {f"aws:ResourceTag/{t['Key']}": t["Value"] for t in role.tags or []}
        return [(action, role.arn, {**tags, **context})]
    if user_name := _param(handler, "UserName"):
        return [(action, _arn(handler, "iam", f"user/{user_name}", region=False), {})]
    if policy_arn:
        return [(action, policy_arn, {})]
    return [(action, "*", {})]


def _sts(handler: Any, _: str) -> list[Call]:
    action = f"sts:{handler._get_action()}"
    return [(action, _param(handler, "RoleArn") or "*", {})]


def _cloudformation(handler: Any, _: str) -> list[Call]:
    from moto.cloudformation.models import cloudformation_backends

    action = f"cloudformation:{handler._get_action()}"
    name = _param(handler, "StackName")
    change_set = _param(handler, "ChangeSetName") or ""
    if not name and change_set.startswith("arn:"):
        backend = cloudformation_backends[handler.current_account][handler.region]
        name = backend.change_sets[change_set].stack_id
    if not name:
        return [(action, "*", {})]
    if name.startswith("arn:"):
        return [(action, name, {})]
    backend = cloudformation_backends[handler.current_account][handler.region]
    try:
        stack_id = backend.get_stack(name).stack_id
    except Exception:  # noqa: BLE001 - no such stack (yet): any stack id of that name
        stack_id = _arn(handler, "cloudformation", f"stack/{name}/*")
    return [(action, stack_id, {})]


# Bucket-level S3 requests: (method, sub-resource in the query) -> IAM action.
_S3_BUCKET = {
    ("GET", "policy"): "GetBucketPolicy",
    ("GET", "encryption"): "GetEncryptionConfiguration",
    ("GET", "lifecycle"): "GetLifecycleConfiguration",
    ("GET", "publicAccessBlock"): "GetBucketPublicAccessBlock",
    ("GET", "versions"): "ListBucketVersions",
    ("GET", "location"): "GetBucketLocation",
    ("GET", "versioning"): "GetBucketVersioning",
    ("GET", "tagging"): "GetBucketTagging",
    ("GET", ""): "ListBucket",
    ("HEAD", ""): "ListBucket",
    ("PUT", "policy"): "PutBucketPolicy",
    ("PUT", "encryption"): "PutEncryptionConfiguration",
    ("PUT", "lifecycle"): "PutLifecycleConfiguration",
    ("PUT", "publicAccessBlock"): "PutBucketPublicAccessBlock",
    ("PUT", "versioning"): "PutBucketVersioning",
    ("PUT", "tagging"): "PutBucketTagging",
    ("PUT", ""): "CreateBucket",
    ("DELETE", "policy"): "DeleteBucketPolicy",
    ("DELETE", ""): "DeleteBucket",
}
_S3_IGNORED_QUERY = {
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "continuation-token",
    "key-marker",
    "version-id-marker",
    "encoding-type",
    "start-after",
    "x-id",
}


def _s3(handler: Any, moto_resource: str) -> list[Call]:
    bucket, _, key = moto_resource.removeprefix(f"arn:{handler.partition}:s3:::").partition("/")
    bucket_arn = f"arn:{handler.partition}:s3:::{bucket}"
    query = {k for k in _url_query(handler) if k not in _S3_IGNORED_QUERY}
    if handler.method == "POST" and "delete" in query:
        return _s3_delete_objects(handler, bucket_arn)
    if key:
        versioned = "versionId" in query
        action = {
            "GET": "GetObjectVersion" if versioned else "GetObject",
            "HEAD": "GetObjectVersion" if versioned else "GetObject",
            "PUT": "PutObject",
            "DELETE": "DeleteObjectVersion" if versioned else "DeleteObject",
        }[handler.method]
        return [(f"s3:{action}", f"{bucket_arn}/{key}", {})]
    (sub,) = query or {""}
    action = _S3_BUCKET.get((handler.method, sub))
    if action is None:
        raise LookupError(f"no IAM action for S3 {handler.method} ?{sub}")
    return [(f"s3:{action}", bucket_arn, {})]


def _s3_delete_objects(handler: Any, bucket_arn: str) -> list[Call]:
    """DeleteObjects is authorised as DeleteObject(Version) of each key in the body."""
    root = ElementTree.fromstring(handler.raw_body)
    calls = []
    for obj in root.iter():
        if obj.tag.rpartition("}")[2] != "Object":
            continue
        fields = {child.tag.rpartition("}")[2]: child.text for child in obj}
        action = "s3:DeleteObjectVersion" if fields.get("VersionId") else "s3:DeleteObject"
        calls.append((action, f"{bucket_arn}/{fields['Key']}", {}))
    return calls


def _secretsmanager(handler: Any, _: str) -> list[Call]:
    """A request on one secret is authorised on the secret's ARN (its name and a random
    suffix, as moto holds it); the hermetic replay tests' function reads one."""
    from moto.secretsmanager.models import secretsmanager_backends

    action, body = handler._get_action(), _json_body(handler)
    if "SecretId" not in body:
        raise LookupError(f"no ARN derivation for secretsmanager:{action}")
    backend = secretsmanager_backends[handler.current_account][handler.region]
    secret = backend.secrets.get(body["SecretId"])
    return [(f"secretsmanager:{action}", secret.arn if secret is not None else body["SecretId"], {})]


_DERIVERS = {
    "secretsmanager": _secretsmanager,
    "dynamodb": _dynamodb,
    "lambda": _lambda,
    "iam": _iam,
    "sts": _sts,
    "cloudformation": _cloudformation,
    "s3": _s3,
}
