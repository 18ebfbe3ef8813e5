"""Join the template's functions with the deployed stack's resources, by physical name.

An invocation carries the physical function name; the template knows logical ids. The
stack's resources (``list_stack_resources``, nested stacks followed) connect the two. A
function of the stack that the template does not describe is skipped with the likely
cause, so the others can still be debugged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from plldb.project.function_code import CFN_STACK, LAMBDA_FUNCTION, NESTED_SEPARATOR
from plldb.project.model import Discovery, LocalFunction


@dataclass
class StackMapping:
    """Functions of the deployed stack joined with the template."""

    functions: dict[str, LocalFunction]  # by physical function name
    skipped: dict[str, str] = field(default_factory=dict)  # physical name -> why not local


def map_stack_functions(discovery: Discovery, stack_resources: list[dict[str, Any]]) -> StackMapping:
    """Key the template's functions by physical name using ``list_stack_resources`` output.

    Each item needs ``LogicalResourceId``, ``PhysicalResourceId`` and ``ResourceType``.
    Nested stacks: list each nested stack's resources yourself (or use
    :func:`collect_stack_resources`) and prefix their logical ids with the nested stack's
    logical id and ``/`` (``App/HelloFunction``), the way :func:`discover` names them.
    A Lambda function of the stack that the template does not describe is skipped with a
    reason that points at the likely cause (another project folder or template), so the
    other functions can still be debugged.
    """
    mapping = StackMapping(functions={})
    for resource in stack_resources:
        if resource.get("ResourceType") != LAMBDA_FUNCTION:
            continue
        logical_id = resource["LogicalResourceId"]
        physical = resource.get("PhysicalResourceId")
        if not physical:
            continue
        if logical_id in discovery.functions:
            mapping.functions[physical] = replace(discovery.functions[logical_id], physical_name=physical)
        else:
            mapping.skipped[physical] = _why_not_mapped(discovery, logical_id)
    return mapping


def _why_not_mapped(discovery: Discovery, logical_id: str) -> str:
    if logical_id in discovery.skipped:
        return discovery.skipped[logical_id]
    parts = logical_id.split(NESTED_SEPARATOR)
    for depth in range(len(parts) - 1, 0, -1):
        nested = NESTED_SEPARATOR.join(parts[:depth])
        if nested in discovery.skipped:
            return f"in {nested}, {discovery.skipped[nested]}"
    return (
        f"function {logical_id} has no match in {discovery.template}: if the stack was deployed "
        "from another project folder, run plldb there or pass --template PATH"
    )


def collect_stack_resources(
    list_resources: Callable[[str], list[dict[str, Any]]], stack_name: str, prefix: str = ""
) -> list[dict[str, Any]]:
    """All resources of a stack and its nested stacks, nested logical ids prefixed.

    ``list_resources(stack)`` returns every ``StackResourceSummaries`` item of one stack (for
    example a paginated ``list_stack_resources``); nested stacks are followed through their
    physical id (the nested stack's ARN).
    """
    collected: list[dict[str, Any]] = []
    for resource in list_resources(stack_name):
        item = dict(resource, LogicalResourceId=f"{prefix}{resource['LogicalResourceId']}")
        collected.append(item)
        if resource.get("ResourceType") == CFN_STACK and resource.get("PhysicalResourceId"):
            collected += collect_stack_resources(
                list_resources, resource["PhysicalResourceId"], f"{item['LogicalResourceId']}{NESTED_SEPARATOR}"
            )
    return collected


