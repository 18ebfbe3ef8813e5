"""Deploy a ready CloudFormation template into the local cloud: what `cdk deploy` or
`serverless deploy` would do with the template their tool synthesized or packaged.

A SAM app is translated and packaged by :func:`tests.harness.localcloud_stacks.deploy_sam_app`;
a CDK app's or Serverless service's template is already CloudFormation, whose functions' code
names the tool's bucket (``cdk-hnb659fds-assets-...``, the service's deployment bucket).
Here each function's code is the zip of a folder the caller names (a CDK function's asset
folder, a Serverless service folder), uploaded as the tools upload it, and what moto's
CloudFormation cannot create is left out, each said through ``progress``:

* ``AWS::CloudFormation::Stack``: moto cannot fetch a nested stack's ``TemplateURL`` from
  the tool's bucket (its functions are not deployed);
* ``AWS::CDK::Metadata``: a CDK analytics resource, no AWS resource at all;
* ``AWS::S3::BucketPolicy`` (the Serverless deployment bucket's TLS-only policy): moto's
  CloudFormation does not support it and lists it as a resource without type or id (the
  code is uploaded to the harness's own bucket, not that one);
* parameters of type ``AWS::SSM::Parameter::Value<...>`` (CDK's ``BootstrapVersion``): they
  name an SSM parameter ``cdk bootstrap`` creates, which nothing here uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plldb.cloud import packaging
from plldb.cloud.aws import AwsContext
from tests.harness.localcloud_stacks import (
    APP_BUCKET,
    ContentStore,
    LocalCloudError,
    Progress,
    create_stack,
    stack_functions,
    zip_folder,
)

_LEFT_OUT = ("AWS::CloudFormation::Stack", "AWS::CDK::Metadata", "AWS::S3::BucketPolicy")
_SSM_PARAMETER = "AWS::SSM::Parameter::Value<"


def deploy_template(
    ctx: AwsContext,
    template: Path,
    code: dict[str, Path],
    stack_name: str,
    store: ContentStore,
    progress: Progress,
) -> dict[str, str]:
    """Create ``stack_name`` from the JSON ``template``, each ``AWS::Lambda::Function``'s code
    zipped from ``code[logical id]``; returns logical id -> physical function name."""
    document = json.loads(template.read_text())
    resources: dict[str, Any] = document["Resources"]
    functions = {k for k, r in resources.items() if r.get("Type") == "AWS::Lambda::Function"}
    if functions != set(code):
        raise LocalCloudError(
            f"{template}: functions {sorted(functions)} need a code folder each, got {sorted(code)}"
        )
    s3 = ctx.client("s3")
    s3.create_bucket(Bucket=APP_BUCKET)
    for name, folder in code.items():
        data = zip_folder(folder)
        key = f"{stack_name}/{packaging.content_name(name, data)}"
        s3.put_object(Bucket=APP_BUCKET, Key=key, Body=data)
        store.put(data)
        resources[name]["Properties"]["Code"] = {"S3Bucket": APP_BUCKET, "S3Key": key}
    for name in [k for k, r in resources.items() if r.get("Type") in _LEFT_OUT]:
        progress(f"{name} ({resources.pop(name)['Type']}): not deployed, moto cannot create it")
    parameters = document.get("Parameters") or {}
    for name in [k for k, p in parameters.items() if str(p.get("Type", "")).startswith(_SSM_PARAMETER)]:
        del parameters[name]
        progress(f"parameter {name}: left out (an SSM parameter of the tool's bootstrap)")
    create_stack(ctx, stack_name, json.dumps(document), progress)
    return stack_functions(ctx, stack_name)
