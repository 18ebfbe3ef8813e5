"""A small target stack in moto for the manager's tests: what a user's SAM stack deploys.

moto's CloudFormation drops a function's ``Layers`` and ``PackageType``, so the five-layer
function gets its layers with ``update_function_configuration`` after the stack exists.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import boto3

STACK_NAME = "plldb-test-target"
NESTED_BUCKET = "plldb-test-templates"
EXISTING_WRAPPER = "/opt/otel/wrapper"
BIG_ENV_VALUE = "x" * 3900  # fits the 4 KB limit alone, not with the plldb variables

# Logical id -> function properties (besides Role and Code).
FUNCTIONS: dict[str, dict[str, Any]] = {
    "Plain": {"Runtime": "python3.12", "Timeout": 3, "Environment": {"Variables": {"A": "1"}}},
    "NoEnv": {"Runtime": "python3.11", "Timeout": 10},
    "Wrapped": {
        "Runtime": "python3.12",
        "Environment": {"Variables": {"AWS_LAMBDA_EXEC_WRAPPER": EXISTING_WRAPPER, "B": "2"}},
    },
    "FiveLayers": {"Runtime": "python3.12"},
    "Node": {"Runtime": "nodejs20.x", "Handler": "index.handler"},
    "BigEnv": {"Runtime": "python3.12", "Environment": {"Variables": {"BIG": BIG_ENV_VALUE}}},
}
NESTED_FUNCTION = "Child"
INSTRUMENTABLE = ("Plain", "NoEnv", "Wrapped", NESTED_FUNCTION)
SKIPPED = ("FiveLayers", "Node", "BigEnv")
VOLATILE = (
    "ResponseMetadata",
    "LastModified",
    "RevisionId",
    "LastUpdateStatus",
    "LastUpdateStatusReason",
    "LastUpdateStatusReasonCode",
)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def _function(properties: dict[str, Any], role: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "Handler": "app.handler",
            "Code": {"ZipFile": "def handler(event, context):\n    return event\n"},
            "Role": role,
            **properties,
        },
    }


def create_stack() -> dict[str, str]:
    """Create the stack (with one nested stack); returns logical id -> function name."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=NESTED_BUCKET)
    child = {
        "Parameters": {"RoleArn": {"Type": "String"}},
        "Resources": {NESTED_FUNCTION: _function({"Runtime": "python3.13"}, {"Ref": "RoleArn"})},
    }
    s3.put_object(Bucket=NESTED_BUCKET, Key="child.json", Body=json.dumps(child).encode())
    role_arn = {"Fn::GetAtt": ["Role", "Arn"]}
    resources: dict[str, Any] = {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "UserPolicy",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}
                            ],
                        },
                    }
                ],
            },
        },
        "Nested": {
            "Type": "AWS::CloudFormation::Stack",
            "Properties": {
                "TemplateURL": f"https://{NESTED_BUCKET}.s3.amazonaws.com/child.json",
                "Parameters": {"RoleArn": role_arn},
            },
        },
    }
    for logical, properties in FUNCTIONS.items():
        resources[logical] = _function(properties, role_arn)
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(
        StackName=STACK_NAME, TemplateBody=json.dumps({"Resources": resources})
    )
    names = {
        summary["LogicalResourceId"]: summary["PhysicalResourceId"]
        for summary in cloudformation.list_stack_resources(StackName=STACK_NAME)[
            "StackResourceSummaries"
        ]
        if summary["ResourceType"] == "AWS::Lambda::Function"
    }
    nested = cloudformation.describe_stack_resource(
        StackName=STACK_NAME, LogicalResourceId="Nested"
    )
    nested_id = nested["StackResourceDetail"]["PhysicalResourceId"]
    names[NESTED_FUNCTION] = cloudformation.describe_stack_resource(
        StackName=nested_id, LogicalResourceId=NESTED_FUNCTION
    )["StackResourceDetail"]["PhysicalResourceId"]
    _add_five_layers(names["FiveLayers"])
    return names


def _add_five_layers(function_name: str) -> None:
    client = boto3.client("lambda")
    arns = [
        client.publish_layer_version(LayerName=f"user-layer-{i}", Content={"ZipFile": _zip()})[
            "LayerVersionArn"
        ]
        for i in range(5)
    ]
    client.update_function_configuration(FunctionName=function_name, Layers=arns)


def configuration(function_name: str) -> dict[str, Any]:
    """get_function_configuration minus the fields every update changes."""
    result = boto3.client("lambda").get_function_configuration(FunctionName=function_name)
    return {k: v for k, v in result.items() if k not in VOLATILE}


def role_policies(function_name: str) -> dict[str, Any]:
    """The function's role's policies: inline (name -> document) and managed (name -> ARN)."""
    iam = boto3.client("iam")
    role = configuration(function_name)["Role"].rsplit("/", 1)[-1]
    inline = {
        name: iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]
    }
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    return {**inline, **{p["PolicyName"]: p["PolicyArn"] for p in attached}}


def snapshot(names: dict[str, str]) -> dict[str, Any]:
    """Every function's configuration and its role's inline policies."""
    return {
        logical: {"configuration": configuration(name), "policies": role_policies(name)}
        for logical, name in names.items()
    }
