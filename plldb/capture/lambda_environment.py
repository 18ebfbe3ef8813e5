"""What Lambda sets for a function that `plldb invoke` must set too.

In Lambda every function sees its reserved variables (``AWS_LAMBDA_FUNCTION_NAME``,
``AWS_REGION``, ...) and its context carries its name, version and memory; handlers build
names from them and every module-level ``boto3.client(...)`` needs the region. Under attach
they come from the real function; for `plldb invoke` they are made here, from the deployed
function when one was found (:class:`Deployed`), else from the template, else from
documented local defaults: the region of your profile, else ``us-east-1`` (with a note),
memory 128 MB, version ``$LATEST``.

Template variables that only the deployed stack can resolve (``!Ref Table``, ``!GetAtt``)
come from the deployed function's own environment; without it each dropped name is named
in a warning, so a ``KeyError: 'TABLE_NAME'`` at import is no surprise.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from plldb.project.function_code import describe
from plldb.project.model import LocalFunction

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"
DEFAULT_MEMORY_MB = 128
LOCAL_ACCOUNT = "123456789012"
LATEST = "$LATEST"


@dataclass
class Deployed:
    """What the deployed function says about itself (``GetFunctionConfiguration``)."""

    name: str
    arn: str
    memory_size: int | None = None
    variables: dict[str, str] = field(default_factory=dict)


@dataclass
class Region:
    """The region the handler is told it runs in, and why (a note when it is a guess)."""

    name: str
    note: str | None = None


def local_region(profile: str | None, given: str | None) -> Region:
    """``--region``, else the region of the profile boto3 would use (``AWS_REGION``,
    ``AWS_DEFAULT_REGION``, the config file), else ``us-east-1`` with a note. Read before
    ``--credentials none`` hides the configuration from the handler."""
    if given:
        return Region(given)
    import boto3
    import botocore.exceptions

    try:
        found = boto3.Session(profile_name=profile).region_name
    except botocore.exceptions.BotoCoreError as exc:
        log.debug("no region from the profile: %s", exc)
        found = None
    if found:
        return Region(found)
    return Region(DEFAULT_REGION, f"no region in your AWS configuration: the function runs as in "
                                  f"{DEFAULT_REGION} (AWS_REGION); pass --region to choose")


def function_name(function: LocalFunction, deployed: Deployed | None = None) -> str:
    """The name the function has in Lambda: the deployed one, the template's ``FunctionName``,
    else the logical id (nested ones with ``-``)."""
    if deployed is not None:
        return deployed.name
    return function.physical_name or function.logical_id.replace("/", "-")


def function_arn(function: LocalFunction, region: str, deployed: Deployed | None = None) -> str:
    """The invoked ARN: the deployed one, else the function's name in a local account."""
    if deployed is not None:
        return deployed.arn
    return f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{function_name(function)}"


def reserved_variables(function: LocalFunction, region: str, deployed: Deployed | None = None,
                       now: datetime.datetime | None = None) -> dict[str, str]:
    """The variables Lambda reserves and sets in every Python function's environment."""
    name = function_name(function, deployed)
    memory = (deployed.memory_size if deployed else None) or function.memory_size or DEFAULT_MEMORY_MB
    day = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y/%m/%d")
    return {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_FUNCTION_VERSION": LATEST,
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{day}/[{LATEST}]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "_HANDLER": function.handler,
        "TZ": ":UTC",
    }


def template_variables(function: LocalFunction, deployed: Deployed | None = None) -> tuple[dict[str, str], list[str]]:
    """The function's own variables and the ones that have no value here.

    A variable the template writes with an intrinsic only the deployed stack resolves
    (``!Ref Table``) takes the deployed function's value; without one it is dropped and
    returned as ``NAME (!Ref Table)``. ``PYTHONPATH`` is left out: discovery maps it to
    local folders (a Lambda path means nothing here).
    """
    values: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in function.environment.items():
        if name == "PYTHONPATH":
            continue
        if isinstance(value, (str, int, float, bool)):
            values[name] = str(value).lower() if isinstance(value, bool) else str(value)
        elif deployed is not None and name in deployed.variables:
            values[name] = deployed.variables[name]
        else:
            dropped.append(f"{name} ({describe(value)})")
    return values, dropped


def dropped_warning(function: LocalFunction, dropped: list[str], why_not_deployed: str | None) -> str:
    """The warning naming the variables the handler will not find."""
    cause = why_not_deployed or "no deployed stack was read"
    return (
        f"{function.logical_id}: variables {', '.join(dropped)} need the deployed stack and are not "
        f"set ({cause}); deploy the stack and pass --stack-name, or set them in your shell"
    )


def deployed_configuration(configuration: dict[str, Any]) -> Deployed:
    """A :class:`Deployed` from ``GetFunctionConfiguration``'s answer."""
    return Deployed(
        name=configuration["FunctionName"],
        arn=configuration["FunctionArn"],
        memory_size=configuration.get("MemorySize"),
        variables=dict((configuration.get("Environment") or {}).get("Variables") or {}),
    )
