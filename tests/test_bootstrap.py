"""`plldb bootstrap` against a real moto server.

moto cannot expand the SAM transform (it skips AWS::Serverless::* and then crashes inside
ExecuteChangeSet) nor create AWS::ApiGatewayV2::* through CloudFormation (it skips them).
So: the real path (the SAM template through a change set) runs until moto fails and must
fail the way an AWS failure does; the full create/update/no-change cycle runs on the
template transformed locally by aws-sam-translator, minus the API Gateway resources.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import boto3
import pytest

from plldb import __version__
from plldb.cloud import packaging
from plldb.cloud.aws import AwsContext, partition_of
from plldb.cloud.bootstrap import BootstrapError, destroy, execute_setup, plan_setup, setup
from plldb.cloud.bucket import (
    LIFECYCLE_RULE_ID,
    TLS_POLICY,
    Bucket,
    _tls_only_policy,
    bucket_name,
    wanted_settings,
)
from plldb.cloud.helper_stack import (
    HelperStack,
    HelperStackMissing,
    HelperStackOutdated,
    check_version,
    find_helper_stack,
)
from plldb.cloud.stacks import stack_status
from plldb.naming import HELPER_STACK_NAME, OUTPUT_VERSION, SESSIONS_TABLE
from tests.test_template import transformed_template

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = bucket_name(REGION, ACCOUNT)
FAST = 0.01  # poll interval: moto finishes every operation within the call


class Progress(list):
    def __call__(self, message: str) -> None:
        self.append(message)


def moto_template(keep_api: bool = False) -> str:
    """The transformed helper template, without what moto's CloudFormation cannot create.

    Dropped resources are replaced by a placeholder wherever referenced. The layer's Ref is
    replaced by its ARN because moto resolves it to an object that breaks GetFunction.
    """
    template = transformed_template(REGION)
    resources = template["Resources"]
    dropped = (
        []
        if keep_api
        else [k for k, v in resources.items() if v["Type"].startswith("AWS::ApiGatewayV2::")]
    )
    for name in dropped:
        del resources[name]
    text = json.dumps(template)
    for name in dropped:
        text = text.replace(json.dumps({"Ref": name}), json.dumps(f"{name.lower()}0"))
        text = text.replace("${" + name + "}", f"{name.lower()}0")
    (layer,) = [k for k, v in resources.items() if v["Type"] == "AWS::Lambda::LayerVersion"]
    layer_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:plldb-runtime-shim:1"
    return text.replace(json.dumps({"Ref": layer}), json.dumps(layer_arn))


def deploy_transformed(ctx: AwsContext, progress: Progress, keep_api: bool = False):
    plan = dataclasses.replace(plan_setup(ctx), template_body=moto_template(keep_api))
    return plan, execute_setup(ctx, plan, progress, poll_seconds=FAST)


def _keys() -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def _expected_keys() -> list[str]:
    return sorted(
        f"artifacts/{__version__}/{packaging.content_name(n, d)}"
        for n, d in packaging.all_zips().items()
    )


def test_real_sam_change_set_runs_and_moto_failure_is_a_bootstrap_error(aws: Any) -> None:
    progress = Progress()
    with pytest.raises(BootstrapError) as failure:
        setup(AwsContext(), progress, poll_seconds=FAST)
    message = str(failure.value)
    assert message.startswith("executing change set plldb-")
    assert "of stack plldb failed: the service returned an internal error" in message
    assert "\n" not in message

    # Bucket settings read back.
    s3 = boto3.client("s3")
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert rule["ID"] == LIFECYCLE_RULE_ID and rule["Expiration"]["Days"] == 1
    assert rule["Filter"]["Prefix"] == "payloads/"
    assert any("TLS-only bucket policy not set" in line for line in progress)
    assert _keys() == _expected_keys()

    # The change set was the real SAM template with all the capabilities.
    cf = boto3.client("cloudformation")
    (summary,) = cf.list_change_sets(StackName=HELPER_STACK_NAME)["Summaries"]
    described = cf.describe_change_set(ChangeSetName=summary["ChangeSetId"])
    kinds = {c["ResourceChange"]["ResourceType"] for c in described["Changes"]}
    assert {"AWS::Serverless::Function", "AWS::ApiGatewayV2::Api"} <= kinds
    assert any(
        line.startswith(f"change set {summary['ChangeSetName']}: 28 resource") for line in progress
    )


def test_setup_on_transformed_template_then_second_setup_changes_nothing(aws: Any) -> None:
    ctx = AwsContext()
    first_progress = Progress()
    plan, first = deploy_transformed(ctx, first_progress)
    assert plan.bucket_exists is False and len(plan.uploads) == 6
    assert first.stack_changed is True
    assert f"deployed stack {HELPER_STACK_NAME}" in first.actions
    assert any(line.startswith("CREATE_COMPLETE") for line in first_progress)  # events streamed
    assert stack_status(boto3.client("cloudformation"), HELPER_STACK_NAME) == "CREATE_COMPLETE"

    # moto's CloudFormation ignores TimeToLiveSpecification: TTL is asserted on the template.
    table = boto3.client("dynamodb").describe_table(TableName=SESSIONS_TABLE)["Table"]
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {
        "StackNameIndex",
        "ConnectionIdIndex",
    }
    manager = boto3.client("lambda").get_function_configuration(FunctionName="plldb-manager")
    assert manager["Handler"] == "plldb.lambdas.manager.handler" and manager["Timeout"] == 900
    assert manager["Environment"]["Variables"]["PLLDB_PAYLOAD_BUCKET"] == BUCKET

    second_progress = Progress()
    plan2, second = deploy_transformed(ctx, second_progress)
    assert plan2.bucket_exists and plan2.bucket_fixes == () and plan2.uploads == ()
    assert second.stack_changed is False
    assert second.actions == [f"stack {HELPER_STACK_NAME}: no changes"]
    assert _keys() == _expected_keys()
    assert plan2.describe() == [
        f"bucket {BUCKET} is up to date",
        f"skip {TLS_POLICY}: S3 endpoint is not TLS",
        "all code zips already uploaded",
        f"update stack {HELPER_STACK_NAME} through a change set",
    ]


def test_resources_the_endpoint_did_not_create_are_named(aws: Any) -> None:
    with pytest.raises(BootstrapError) as failure:
        deploy_transformed(AwsContext(), Progress(), keep_api=True)
    message = str(failure.value)
    assert message.startswith("stack plldb ended CREATE_COMPLETE without creating ")
    assert "WebSocketApi (AWS::ApiGatewayV2::Api)" in message
    assert "ConnectAuthorizer (AWS::ApiGatewayV2::Authorizer)" in message
    assert "SessionsTable" not in message


def test_destroy_twice(aws: Any) -> None:
    ctx = AwsContext()
    deploy_transformed(ctx, Progress())
    first = destroy(ctx, Progress(), poll_seconds=FAST)
    assert first == [f"deleted stack {HELPER_STACK_NAME}", f"deleted bucket {BUCKET} (6 object(s))"]
    assert stack_status(boto3.client("cloudformation"), HELPER_STACK_NAME) is None
    assert BUCKET not in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    second = destroy(ctx, Progress(), poll_seconds=FAST)
    assert second == [
        f"stack {HELPER_STACK_NAME} does not exist",
        f"bucket {BUCKET} does not exist",
    ]


def test_tls_policy_only_on_tls_endpoints() -> None:
    assert TLS_POLICY in wanted_settings("https://s3.eu-west-1.amazonaws.com")
    assert TLS_POLICY not in wanted_settings("http://127.0.0.1:5000")
    (statement,) = _tls_only_policy(Bucket("b", "aws"))["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]


@pytest.mark.parametrize("partition", ["aws-cn", "aws-us-gov"])
def test_the_bucket_policy_is_in_the_callers_partition(partition: str) -> None:
    (statement,) = _tls_only_policy(Bucket("b", partition))["Statement"]
    assert statement["Resource"] == [f"arn:{partition}:s3:::b", f"arn:{partition}:s3:::b/*"]
    assert partition_of(f"arn:{partition}:iam::123456789012:user/dev") == partition


def test_the_plan_takes_the_partition_from_the_callers_arn(aws: Any) -> None:
    assert plan_setup(AwsContext()).partition == "aws"  # moto's caller: arn:aws:sts::...
    with pytest.raises(ValueError, match="not an ARN: 'nope'"):
        partition_of("nope")


# ------------------------------------------------------------------ helper stack lookup


def _create_stack_directly(version: str) -> None:
    """create_stack (not a change set): the one moto path that computes stack outputs."""
    plan = plan_setup(AwsContext())
    execute_uploads = dataclasses.replace(plan, template_body=moto_template())
    params = {**execute_uploads.parameters, "HelperStackVersion": version}
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for artifact in plan.artifacts:
        s3.put_object(Bucket=BUCKET, Key=artifact.key, Body=artifact.data)
    boto3.client("cloudformation").create_stack(
        StackName=HELPER_STACK_NAME,
        TemplateBody=execute_uploads.template_body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )


def test_find_helper_stack_missing(aws: Any) -> None:
    with pytest.raises(
        HelperStackMissing,
        match="no helper stack 'plldb' in region us-east-1: run `plldb bootstrap` first",
    ):
        find_helper_stack(AwsContext())


def test_find_helper_stack_reads_outputs(aws: Any) -> None:
    _create_stack_directly(__version__)
    helper = find_helper_stack(AwsContext())
    assert isinstance(helper, HelperStack)
    assert helper.version == __version__
    assert helper.sessions_table == "PLLDBSessions" and helper.debugger_table == "PLLDBDebugger"
    assert helper.debugger_role_arn.endswith(":role/PLLDBDebuggerRole-us-east-1")
    assert helper.manager_function == "plldb-manager"
    assert helper.payload_bucket == BUCKET
    assert (
        helper.management_url == "https://websocketapi0.execute-api.us-east-1.amazonaws.com/stage0"
    )


@pytest.mark.parametrize(
    ("found", "expected_text"),
    [
        ("0.0.1", "is version 0.0.1, older than this plldb"),
        ("99.0", "is version 99.0, newer than this plldb"),
    ],
)
def test_find_helper_stack_outdated(aws: Any, found: str, expected_text: str) -> None:
    _create_stack_directly(found)
    with pytest.raises(HelperStackOutdated, match=expected_text) as failure:
        find_helper_stack(AwsContext())
    assert "plldb bootstrap" in str(failure.value)
    assert failure.value.found == found and failure.value.expected == __version__


def test_version_compare_is_numeric() -> None:
    check_version("0.10.0", "0.10.0")
    with pytest.raises(HelperStackOutdated, match="older"):
        check_version("0.9.0", "0.10.0")


def test_missing_output_is_reported() -> None:
    with pytest.raises(HelperStackOutdated, match=f"lacks outputs .*{OUTPUT_VERSION}"):
        HelperStack.from_outputs({})


# ------------------------------------------------------------------ the bucket's encryption


def _default_encryption(algorithm: str, key: str | None = None) -> None:
    default = {"SSEAlgorithm": algorithm, **({"KMSMasterKeyID": key} if key else {})}
    boto3.client("s3").put_bucket_encryption(
        Bucket=BUCKET,
        ServerSideEncryptionConfiguration={"Rules": [{"ApplyServerSideEncryptionByDefault": default}]},
    )


def test_a_bucket_encrypted_with_a_customer_managed_key_is_refused_with_what_to_do(
    aws: Any,
) -> None:
    """With SSE-KMS, "you must have permission to use the AWS KMS key" to upload and download
    (Using server-side encryption with AWS KMS keys, S3 user guide); plldb grants debugged
    functions' roles no kms:* right, so their payload transfers would be refused."""
    key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    _default_encryption("aws:kms", key)
    with pytest.raises(BootstrapError) as refused:
        plan_setup(AwsContext())
    assert str(refused.value) == (
        f"bucket {BUCKET} encrypts new objects with the customer managed KMS key {key} by "
        "default; the roles of debugged functions get no rights on it, so their event and "
        "result transfers would be refused. Set its default encryption to SSE-S3 (aws s3api "
        f"put-bucket-encryption --bucket {BUCKET} --server-side-encryption-configuration "
        '\'{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}\') '
        "or to the AWS managed key (aws:kms without a key id), then run `plldb bootstrap "
        "setup` again"
    )


@pytest.mark.parametrize("key", [None, "alias/aws/s3", f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/s3"])
def test_sse_s3_and_the_aws_managed_key_are_kept(aws: Any, key: str | None) -> None:
    """The AWS managed key's policy lets any principal of the account use it through S3."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    _default_encryption("aws:kms", key)
    assert "default encryption" not in plan_setup(AwsContext()).bucket_fixes
    _default_encryption("AES256")
    assert "default encryption" not in plan_setup(AwsContext()).bucket_fixes
