"""The deployed function behind a template function, read for `plldb invoke`.

Only the deployed stack knows what ``!Ref Table`` became; the deployed function's own
configuration holds it resolved, with its real name, ARN and memory. Reading it takes calls
attach already makes with your credentials (``cloudformation:ListStackResources``, nested
stacks followed, and ``lambda:GetFunctionConfiguration``; both in the developer policy); any
failure is returned as the reason, and invoke carries on with the template's values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from plldb.capture.lambda_environment import Deployed, deployed_configuration
from plldb.cloud.aws import AwsContext, error_code
from plldb.project.function_code import LAMBDA_FUNCTION
from plldb.project.stack_mapping import collect_stack_resources

log = logging.getLogger(__name__)


class NotDeployed(Exception):
    """The deployed function could not be read; the text says why (one line)."""


def find_deployed(ctx: AwsContext, stack_name: str, logical_id: str) -> Deployed:
    """The deployed function ``logical_id`` (nested: ``App/Fn``) of ``stack_name``."""
    try:
        paginator = ctx.client("cloudformation").get_paginator("list_stack_resources")

        def list_resources(stack: str) -> list[dict[str, Any]]:
            return [r for page in paginator.paginate(StackName=stack) for r in page["StackResourceSummaries"]]

        resources = collect_stack_resources(list_resources, stack_name)
        physical = next((r.get("PhysicalResourceId") for r in resources
                         if r["LogicalResourceId"] == logical_id and r.get("ResourceType") == LAMBDA_FUNCTION), None)
        if not physical:
            raise NotDeployed(f"stack {stack_name} has no deployed function {logical_id}")
        configuration = ctx.client("lambda").get_function_configuration(FunctionName=physical)
    except NotDeployed:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure only means "not read"
        log.debug("deployed function %s of %s not read", logical_id, stack_name, exc_info=True)
        raise NotDeployed(_why(exc, stack_name, logical_id)) from None
    return deployed_configuration(configuration)


def _why(exc: Exception, stack_name: str, logical_id: str) -> str:
    code = error_code(exc)
    if code == "ValidationError":
        return f"stack {stack_name} not found (deploy it, or pass the deployed stack as --stack-name)"
    if code in ("AccessDenied", "AccessDeniedException"):
        return f"your credentials may not read stack {stack_name} or its function ({code})"
    text = " ".join(str(exc).split())[:160]
    return f"stack {stack_name} could not be read: {text or type(exc).__name__}"


def deployed_reader(profile: str | None, region: str) -> Callable[[str, str], Deployed]:
    """``find_deployed`` with the AWS context of --profile and the region the function runs in."""
    ctx = AwsContext(profile=profile, region=region)
    return lambda stack_name, logical_id: find_deployed(ctx, stack_name, logical_id)
