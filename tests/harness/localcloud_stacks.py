"""The local cloud's stacks: the helper stack ``plldb`` and SAM apps, deployed into moto.

Both go through plldb's own bootstrap code (:func:`plldb.cloud.bootstrap.plan_setup`,
:func:`~plldb.cloud.bootstrap.execute_setup`, :func:`~plldb.cloud.stacks.deploy_stack`: bucket,
content-addressed uploads, change set, event stream), with one difference forced by moto:
the template is translated here with aws-sam-translator (moto cannot expand the SAM
transform) and the resources moto cannot create are taken out and replaced by literals:

* ``AWS::ApiGatewayV2::*`` is the gateway emulator; references to the API become its id
  and the outputs ``WebSocketUrl``/``ManagementUrl`` become the emulator's URLs;
* ``AWS::Lambda::Permission`` only lets API Gateway call the helpers: meaningless here;
* ``AWS::Lambda::LayerVersion``: moto's CloudFormation returns a Python object's repr as
  its ``Ref``, so each layer is published with ``PublishLayerVersion`` (same properties,
  same zip) and references become its ARN;
* moto's CloudFormation drops a function's ``Layers``: they are set afterwards with
  ``UpdateFunctionConfiguration``, so the deployed configuration is the template's.

moto keeps code zips but never gives them back (``Code.Location`` is a dummy), so every zip
handed to moto is also kept in a :class:`ContentStore` under the ``CodeSha256`` moto
reports, where the Lambda front finds a function's code and layers when it runs them.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from plldb import naming
from plldb.cloud import bootstrap, packaging, stacks
from plldb.cloud.aws import AwsContext

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

LOCAL_API_ID = "plldblocal"  # stands for the WebSocket API's id in ARNs
APP_BUCKET = "plldb-localcloud-app-artifacts"  # `sam deploy`'s bucket for the apps' code
POLL_SECONDS = 0.2  # moto finishes a stack at once: no need for bootstrap's 2 s polling

# Resource types moto's CloudFormation cannot create (see the module docstring).
_API_PREFIX = "AWS::ApiGatewayV2::"
_PERMISSION = "AWS::Lambda::Permission"
_LAYER = "AWS::Lambda::LayerVersion"
_FUNCTION = "AWS::Lambda::Function"
_SERVERLESS_FUNCTION = "AWS::Serverless::Function"
_SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"


class LocalCloudError(RuntimeError):
    """The local cloud could not be set up; the text says which step and why."""


# --------------------------------------------------------------------------- content store


def code_sha256(data: bytes) -> str:
    """Lambda's ``CodeSha256``: base64 of the SHA-256 of the zip."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class ContentStore:
    """Zips by ``CodeSha256``, in a folder shared by the local cloud's processes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, sha: str) -> Path:
        return self.root / f"{base64.b64decode(sha).hex()}.zip"

    def put(self, data: bytes) -> str:
        sha = code_sha256(data)
        path = self._path(sha)
        if not path.exists():
            path.write_bytes(data)
        return sha

    def get(self, sha: str) -> bytes:
        path = self._path(sha)
        if not path.exists():
            raise LookupError(
                f"no zip with CodeSha256 {sha} was deployed through the local cloud "
                "(moto does not give code back: deploy with the local cloud's helpers)"
            )
        return path.read_bytes()


# --------------------------------------------------------------------------- templates


def translate_sam(template: dict[str, Any], region: str) -> dict[str, Any]:
    """The CloudFormation template the SAM transform would produce (no AWS call made)."""
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name=region))
    return translator.translate(copy.deepcopy(template), {}, get_managed_policy_map=dict)


def substitute(node: Any, literals: dict[str, str]) -> Any:
    """``node`` with ``Ref``/``${...}`` of the resources in ``literals`` replaced by values."""
    if isinstance(node, list):
        return [substitute(item, literals) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in literals:
        return literals[node["Ref"]]
    if set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in literals:
        raise LocalCloudError(f"Fn::GetAtt of {node['Fn::GetAtt'][0]}, which moto cannot create")
    if set(node) == {"Fn::Sub"}:
        value = node["Fn::Sub"]
        text, variables = (value, None) if isinstance(value, str) else (value[0], value[1])
        for name, literal in literals.items():
            text = text.replace(f"${{{name}}}", literal)
        if variables is None:
            return {"Fn::Sub": text} if "${" in text else text
        return {"Fn::Sub": [text, substitute(variables, literals)]}
    return {key: substitute(value, literals) for key, value in node.items()}


def _split_resources(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    """Remove and return the resources whose type is (or starts with) one of ``types``."""
    removed = {
        name: resource
        for name, resource in template["Resources"].items()
        if any(
            resource["Type"] == t or (t.endswith("::") and resource["Type"].startswith(t))
            for t in types
        )
    }
    for name in removed:
        del template["Resources"][name]
    return removed


def _resolve(value: Any, parameters: dict[str, str]) -> Any:
    """A property that is a literal or a ``Ref`` to a parameter, as a literal."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in parameters:
        return parameters[value["Ref"]]
    if isinstance(value, dict):
        raise LocalCloudError(f"cannot resolve {value} locally")
    return value


def publish_layers(
    lambda_client: Any,
    layers: dict[str, dict[str, Any]],
    parameters: dict[str, str],
    zips_by_key: dict[str, bytes],
) -> dict[str, str]:
    """Publish each ``AWS::Lambda::LayerVersion`` resource; logical id -> LayerVersionArn."""
    arns = {}
    for name, resource in layers.items():
        props = resource["Properties"]
        key = _resolve(props["Content"]["S3Key"], parameters)
        if key not in zips_by_key:
            raise LocalCloudError(f"layer {name}: no zip uploaded under {key}")
        request = {"LayerName": _resolve(props.get("LayerName", name), parameters)}
        for optional in (
            "Description",
            "CompatibleRuntimes",
            "CompatibleArchitectures",
            "LicenseInfo",
        ):
            if optional in props:
                request[optional] = props[optional]
        published = lambda_client.publish_layer_version(
            Content={"ZipFile": zips_by_key[key]}, **request
        )
        arns[name] = published["LayerVersionArn"]
        log.info("published layer %s as %s", name, arns[name])
    return arns


def local_helper_template(
    cfn: dict[str, Any],
    *,
    layer_arns: dict[str, str],
    websocket_url: str,
    management_url: str,
    grace_seconds: float,
) -> dict[str, Any]:
    """The translated helper template, with what moto cannot create replaced by literals."""
    template = copy.deepcopy(cfn)
    template.pop("Transform", None)
    removed = _split_resources(template, _API_PREFIX, _PERMISSION, _LAYER)
    literals = {name: name for name in removed}  # nothing else should refer to them
    for name, resource in removed.items():
        if resource["Type"] == "AWS::ApiGatewayV2::Api":
            literals[name] = LOCAL_API_ID
        elif resource["Type"] == "AWS::ApiGatewayV2::Stage":
            literals[name] = resource["Properties"]["StageName"]
    literals.update(layer_arns)
    template = substitute(template, literals)
    for resource in template["Resources"].values():
        if resource["Type"] == _FUNCTION:
            variables = (
                resource["Properties"].setdefault("Environment", {}).setdefault("Variables", {})
            )
            variables[naming.ENV_MANAGEMENT_URL] = management_url
    template["Outputs"][naming.OUTPUT_WEBSOCKET_URL]["Value"] = websocket_url
    template["Outputs"][naming.OUTPUT_MANAGEMENT_URL]["Value"] = management_url
    template["Parameters"]["GraceSeconds"]["Default"] = grace_seconds
    return template


def stage_name(cfn: dict[str, Any]) -> str:
    """The WebSocket API's stage, as the template names it."""
    for resource in cfn["Resources"].values():
        if resource["Type"] == "AWS::ApiGatewayV2::Stage":
            return resource["Properties"]["StageName"]
    raise LocalCloudError("the helper template has no AWS::ApiGatewayV2::Stage")


def helper_template() -> dict[str, Any]:
    """plldb/infra/template.yaml translated from SAM to CloudFormation."""
    return yaml_parse(bootstrap.TEMPLATE_PATH.read_text())


# --------------------------------------------------------------------------- helper stack


def provision_helper_stack(
    ctx: AwsContext,
    store: ContentStore,
    *,
    websocket_url: str,
    management_url: str,
    grace_seconds: float,
    progress: Progress,
) -> dict[str, str]:
    """Bootstrap the helper stack ``plldb`` into moto; returns its outputs.

    ``bootstrap.plan_setup`` computes bucket, zips and keys exactly as for AWS; only the
    template body of the plan is replaced by its local translation.
    """
    plan = bootstrap.plan_setup(ctx)
    zips_by_key = {artifact.key: artifact.data for artifact in plan.artifacts}
    for data in zips_by_key.values():
        store.put(data)
    cfn = translate_sam(helper_template(), ctx.region_name)
    layers = {n: r for n, r in cfn["Resources"].items() if r["Type"] == _LAYER}
    layer_arns = publish_layers(ctx.client("lambda"), layers, plan.parameters, zips_by_key)
    template = local_helper_template(
        cfn,
        layer_arns=layer_arns,
        websocket_url=websocket_url,
        management_url=management_url,
        grace_seconds=grace_seconds,
    )
    plan = dataclasses.replace(plan, template_body=json.dumps(template))
    bootstrap.execute_setup(ctx, plan, progress, poll_seconds=POLL_SECONDS)
    return register_outputs(ctx, naming.HELPER_STACK_NAME, plan.template_body, plan.parameters)


def register_outputs(
    ctx: AwsContext, stack_name: str, template_body: str, parameters: dict[str, str]
) -> dict[str, str]:
    """Give a stack created through a change set its outputs; returns them.

    moto gap: executing a change set creates the resources but never evaluates the
    template's ``Outputs`` (a stack created by ``CreateStack`` or updated by ``UpdateStack``
    has them). An ``UpdateStack`` with the same template and parameters changes nothing
    else.
    """
    cf = ctx.client("cloudformation")
    cf.update_stack(
        StackName=stack_name,
        TemplateBody=template_body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=stacks.CAPABILITIES,
    )
    outputs = stacks.stack_outputs(cf, stack_name)
    if not outputs:
        raise LocalCloudError(f"stack {stack_name} has no outputs after UpdateStack")
    return outputs


# --------------------------------------------------------------------------- SAM apps


def zip_folder(folder: Path) -> bytes:
    """What `sam package` uploads for a local CodeUri/ContentUri (deterministic bytes)."""
    if not folder.is_dir():
        raise LocalCloudError(f"code folder {folder} does not exist")
    files = [
        (path.relative_to(folder).as_posix(), path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    return packaging.deterministic_zip(files)


def _is_local(uri: Any) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://")


def package_sam_app(
    sam: dict[str, Any],
    app_dir: Path,
    stack_name: str,
    bucket: str,
    s3: Any,
    store: ContentStore,
) -> dict[str, bytes]:
    """`sam package`: upload local CodeUri/ContentUri folders, point the template at them.

    Rewrites ``sam`` in place; returns the uploaded zips by key.
    """
    uploaded: dict[str, bytes] = {}

    def upload(uri: str, name: str) -> dict[str, str]:
        data = zip_folder((app_dir / uri).resolve())
        key = f"{stack_name}/{packaging.content_name(name, data)}"
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        store.put(data)
        uploaded[key] = data
        return {"Bucket": bucket, "Key": key}

    function_globals = sam.get("Globals", {}).get("Function", {})
    if _is_local(function_globals.get("CodeUri")):
        function_globals["CodeUri"] = upload(function_globals["CodeUri"], "globals")
    for name, resource in sam.get("Resources", {}).items():
        props = resource.setdefault("Properties", {})
        if resource["Type"] == _SERVERLESS_FUNCTION and _is_local(props.get("CodeUri")):
            props["CodeUri"] = upload(props["CodeUri"], name)
        elif resource["Type"] == _SERVERLESS_LAYER and _is_local(props.get("ContentUri")):
            props["ContentUri"] = upload(props["ContentUri"], name)
    return uploaded


def deploy_sam_app(
    ctx: AwsContext,
    app_dir: Path,
    stack_name: str,
    store: ContentStore,
    progress: Progress,
    template_name: str = "template.yaml",
) -> dict[str, str]:
    """`sam deploy` of ``app_dir`` into moto; returns logical id -> physical function name."""
    s3 = ctx.client("s3")
    s3.create_bucket(Bucket=APP_BUCKET)  # us-east-1: a no-op when it is already ours
    sam = yaml_parse((app_dir / template_name).read_text())
    zips_by_key = package_sam_app(sam, app_dir, stack_name, APP_BUCKET, s3, store)
    cfn = translate_sam(sam, ctx.region_name)
    cfn.pop("Transform", None)
    layers = _split_resources(cfn, _LAYER)
    lambda_client = ctx.client("lambda")
    literals = publish_layers(lambda_client, layers, {}, zips_by_key)
    cfn = substitute(cfn, literals)
    create_stack(ctx, stack_name, json.dumps(cfn), progress)
    functions = stack_functions(ctx, stack_name)
    for name, resource in cfn["Resources"].items():
        wanted = resource["Properties"].get("Layers") if resource["Type"] == _FUNCTION else None
        if wanted:
            if not all(isinstance(arn, str) for arn in wanted):
                raise LocalCloudError(f"{name}: Layers must be local layers or literal ARNs")
            lambda_client.update_function_configuration(FunctionName=functions[name], Layers=wanted)
            progress(f"{name}: layers set ({len(wanted)}), which moto's CloudFormation drops")
    return functions


def create_stack(ctx: AwsContext, stack_name: str, template_body: str, progress: Progress) -> None:
    """CreateStack (not a change set, whose stacks get no outputs in moto) and check it."""
    cf = ctx.client("cloudformation")
    cf.create_stack(
        StackName=stack_name, TemplateBody=template_body, Capabilities=stacks.CAPABILITIES
    )
    status = stacks.stack_status(cf, stack_name)
    if status != "CREATE_COMPLETE":
        raise LocalCloudError(f"stack {stack_name} ended {status}")
    progress(f"created stack {stack_name}")


def stack_functions(ctx: AwsContext, stack_name: str) -> dict[str, str]:
    """Logical id -> physical name of the stack's ``AWS::Lambda::Function`` resources."""
    resources = ctx.client("cloudformation").describe_stack_resources(StackName=stack_name)
    return {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in resources["StackResources"]
        if r["ResourceType"] == _FUNCTION
    }
