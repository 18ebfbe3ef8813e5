"""Functions by name: debug functions that no CloudFormation stack describes.

Terraform, Pulumi and the console deploy functions plldb cannot find through a template.
The developer names each one and the folder its code runs from here (``--function-name NAME
--code DIR [--handler H]``); the rest (runtime, handler, layers, memory, timeout,
environment) is what the deployed function says, read with the developer's own credentials
(``lambda:GetFunctionConfiguration``). The result is the same :class:`Discovery` the
template readers produce, so attach runs these functions as it runs a stack's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plldb.cloud.aws import AwsContext, error_code
from plldb.project.function_code import NotLocal, check_handler_file
from plldb.project.model import Discovery, LocalFunction
from plldb.project.python_version import version_warnings
from plldb.project.templates import DiscoveryError

KIND = "functions by name"


@dataclass(frozen=True)
class NamedCode:
    """One ``--function-name`` with its ``--code`` folder and, optionally, ``--handler``."""

    name: str
    code: Path
    handler: str | None = None


def discover_by_name(
    ctx: AwsContext, named: list[NamedCode], python_version: tuple[int, int] = sys.version_info[:2]
) -> Discovery:
    """Local functions for ``named``, keyed by function name; any bad entry is an error.

    Unlike a template's functions, these were named on purpose, so one that cannot run here
    fails the command with why instead of being skipped.
    """
    client = ctx.client("lambda")
    result = Discovery(template=Path.cwd(), functions={}, kind=KIND)
    for item in named:
        configuration = _deployed_configuration(client, item.name, ctx.region_name)
        result.functions[item.name] = local_function(item, configuration)
    result.warnings += version_warnings(list(result.functions.values()), python_version)
    return result


def _deployed_configuration(client: Any, name: str, region: str) -> dict[str, Any]:
    try:
        return client.get_function_configuration(FunctionName=name)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise DiscoveryError(
                f"function {name!r} not found in region {region}: check --function-name and --region"
            ) from exc
        if error_code(exc) in ("AccessDeniedException", "AccessDenied"):
            raise DiscoveryError(
                f"cannot read function {name!r} in region {region}: your credentials need "
                "lambda:GetFunctionConfiguration on it (statement ReadFunctionsByName of "
                "docs/iam/plldb-developer-policy.json)"
            ) from exc
        raise


def local_function(item: NamedCode, configuration: dict[str, Any]) -> LocalFunction:
    """``item``'s code folder with what the deployed ``configuration`` says about the rest."""
    if configuration.get("PackageType") == "Image":
        raise DiscoveryError(f"function {item.name}: a container image function cannot run here")
    runtime = configuration.get("Runtime") or ""
    if not runtime.startswith("python"):
        raise DiscoveryError(f"function {item.name}: runtime {runtime or 'unknown'} is not Python")
    handler = item.handler or configuration.get("Handler") or ""
    code = item.code.resolve()
    if not code.is_dir():
        raise DiscoveryError(f"function {item.name}: code folder {item.code} ({code}) not found")
    try:
        check_handler_file(handler, code, (code,))
    except NotLocal as reason:
        raise DiscoveryError(
            f"function {item.name}: code folder {item.code} has no module for handler {handler} "
            f"({reason}): pass the folder the function's code is built from as --code, or --handler"
        ) from None
    return LocalFunction(
        logical_id=item.name,
        handler=handler,
        runtime=runtime,
        code_dir=code,
        import_path=(code,),
        physical_name=item.name,
        architecture=(configuration.get("Architectures") or ["x86_64"])[0],
        memory_size=configuration.get("MemorySize"),
        timeout=configuration.get("Timeout"),
        environment=dict((configuration.get("Environment") or {}).get("Variables") or {}),
        remote_layers=tuple(layer["Arn"] for layer in configuration.get("Layers") or []),
    )


def pair_options(names: tuple[str, ...], codes: tuple[Path, ...], handlers: tuple[str, ...]) -> list[NamedCode]:
    """``--function-name``s with their ``--code`` and ``--handler`` in the order given; one
    ``--code`` (or ``--handler``) serves every name. Raises ValueError with the usage problem."""
    if not codes:
        raise ValueError("--function-name needs --code DIR (the folder the function's code runs from)")
    if len(codes) not in (1, len(names)) or len(handlers) not in (0, 1, len(names)):
        raise ValueError(
            f"{len(names)} --function-name, {len(codes)} --code, {len(handlers)} --handler: give "
            "--code (and --handler, if any) once for all names or once per name, in the same order"
        )
    if len(set(names)) != len(names):
        raise ValueError("a --function-name is given twice")
    return [
        NamedCode(name, codes[i if len(codes) > 1 else 0],
                  handlers[i if len(handlers) > 1 else 0] if handlers else None)
        for i, name in enumerate(names)
    ]
