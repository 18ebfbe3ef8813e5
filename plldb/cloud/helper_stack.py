"""Finding the helper stack ``plldb`` and reading what the local tool needs from it.

Everything the CLI knows about the deployed helper stack comes from its outputs (named by
the ``OUTPUT_*`` constants of :mod:`plldb.protocol`), so the local cloud used in tests is
found exactly like AWS: a stack called ``plldb`` with those outputs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import botocore.exceptions

from plldb import __version__
from plldb.cloud.aws import AwsContext, error_code
from plldb.naming import (
    HELPER_STACK_NAME,
    OUTPUT_DEBUGGER_ROLE,
    OUTPUT_DEBUGGER_TABLE,
    OUTPUT_LAYER_ARN,
    OUTPUT_MANAGEMENT_URL,
    OUTPUT_MANAGER_FUNCTION,
    OUTPUT_MANAGER_ROLE,
    OUTPUT_PAYLOAD_BUCKET,
    OUTPUT_SESSIONS_TABLE,
    OUTPUT_VERSION,
    OUTPUT_WEBSOCKET_URL,
)

log = logging.getLogger(__name__)

_USABLE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}


class HelperStackMissing(Exception):
    """There is no usable helper stack in this account and region."""


class HelperStackOutdated(Exception):
    """The helper stack was deployed by a different plldb version than the one running."""

    def __init__(self, message: str, found: str, expected: str) -> None:
        super().__init__(message)
        self.found = found
        self.expected = expected


@dataclass(frozen=True)
class HelperStack:
    """The outputs of the helper stack, one typed field per output."""

    websocket_url: str
    management_url: str
    sessions_table: str
    debugger_table: str
    debugger_role_arn: str
    manager_role_arn: str
    manager_function: str
    layer_version_arn: str
    payload_bucket: str
    version: str

    @classmethod
    def from_outputs(cls, outputs: dict[str, str]) -> HelperStack:
        """Build from a stack's outputs; HelperStackOutdated names any output missing."""
        missing = [key for key in _FIELD_BY_OUTPUT if key not in outputs]
        if missing:
            raise HelperStackOutdated(
                f"helper stack {HELPER_STACK_NAME!r} lacks outputs {', '.join(missing)}: "
                "run `plldb bootstrap` to update it",
                found=outputs.get(OUTPUT_VERSION, "unknown"),
                expected=__version__,
            )
        return cls(**{field: outputs[key] for key, field in _FIELD_BY_OUTPUT.items()})


_FIELD_BY_OUTPUT = {
    OUTPUT_WEBSOCKET_URL: "websocket_url",
    OUTPUT_MANAGEMENT_URL: "management_url",
    OUTPUT_SESSIONS_TABLE: "sessions_table",
    OUTPUT_DEBUGGER_TABLE: "debugger_table",
    OUTPUT_DEBUGGER_ROLE: "debugger_role_arn",
    OUTPUT_MANAGER_ROLE: "manager_role_arn",
    OUTPUT_MANAGER_FUNCTION: "manager_function",
    OUTPUT_LAYER_ARN: "layer_version_arn",
    OUTPUT_PAYLOAD_BUCKET: "payload_bucket",
    OUTPUT_VERSION: "version",
}


def version_tuple(version: str) -> tuple[int, ...]:
    """'1.2.10' -> (1, 2, 10): numeric parts only, so that 0.10 sorts after 0.9."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


def check_version(found: str, expected: str = __version__) -> None:
    """Raise HelperStackOutdated unless the stack was deployed by this plldb version."""
    if found == expected:
        return
    if version_tuple(found) > version_tuple(expected):
        message = (
            f"helper stack {HELPER_STACK_NAME!r} is version {found}, newer than this plldb "
            f"{expected}: upgrade plldb, or run `plldb bootstrap` to deploy {expected}"
        )
    else:
        message = (
            f"helper stack {HELPER_STACK_NAME!r} is version {found}, older than this plldb "
            f"{expected}: run `plldb bootstrap` to update it"
        )
    raise HelperStackOutdated(message, found=found, expected=expected)


def find_helper_stack(ctx: AwsContext) -> HelperStack:
    """The deployed helper stack of ``ctx``'s account and region, checked to be usable."""
    cf = ctx.client("cloudformation")
    where = f"in region {ctx.region_name}"
    try:
        stack = cf.describe_stacks(StackName=HELPER_STACK_NAME)["Stacks"][0]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            raise HelperStackMissing(
                f"no helper stack {HELPER_STACK_NAME!r} {where}: run `plldb bootstrap` first"
            ) from exc
        raise
    status = stack["StackStatus"]
    if status not in _USABLE:
        raise HelperStackMissing(
            f"helper stack {HELPER_STACK_NAME!r} {where} is {status}: "
            "run `plldb bootstrap` (or wait for the running operation to finish)"
        )
    outputs = {o["OutputKey"]: str(o["OutputValue"]) for o in stack.get("Outputs") or []}
    helper = HelperStack.from_outputs(outputs)
    check_version(helper.version)
    log.debug("helper stack %s: %s", HELPER_STACK_NAME, helper)
    return helper
