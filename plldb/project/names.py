"""The names a user may type for a function, and finding a function by any of them.

Templates key functions by logical id (``HelloLambdaFunction``, ``UrlShortenerFunction3A1B2C``),
which users rarely know. They type what their project calls the function: the physical name
(``FunctionName``), the key in ``serverless.yml`` (``hello``), or the CDK construct path or id
(``UrlShortenerFunction``). Each reader records those in :attr:`Discovery.names`; this module
records the ones a template itself carries and resolves a typed name to one logical id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plldb.project.model import Discovery
from plldb.project.templates import DiscoveryError, Resolver, Unresolved

CDK_PATH = "aws:cdk:path"
_CDK_RESOURCE = "/Resource"


class FunctionNotFound(DiscoveryError):
    """No function (or several) of the project has the name the user typed."""


def record_template_names(result: Discovery, name: str, resource: dict[str, Any], resolver: Resolver) -> None:
    """The physical name (``FunctionName``, when plain or resolvable here) and, for a template
    CDK synthesized, the construct path with and without the stack and the construct id."""
    properties = resource.get("Properties") if isinstance(resource.get("Properties"), dict) else {}
    try:
        physical = resolver.resolve(properties.get("FunctionName"))
    except Unresolved:
        physical = None
    if isinstance(physical, str):
        result.add_name(name, physical)
    for alias in cdk_names((resource.get("Metadata") or {}).get(CDK_PATH)):
        result.add_name(name, alias)


def cdk_names(path: Any) -> list[str]:
    """``Stack/Api/Handler/Resource`` -> ``Stack/Api/Handler``, ``Api/Handler``, ``Handler``."""
    if not isinstance(path, str) or "/" not in path:
        return []
    construct = path.removesuffix(_CDK_RESOURCE)
    parts = construct.split("/")
    return list(dict.fromkeys([construct, "/".join(parts[1:]), parts[-1]]))


def project_description(discovery: Discovery) -> str:
    """The kind of project and the files read, for messages: "the Serverless Framework
    service (read serverless.yml, .serverless/...)", never a template that is not there."""
    here = Path.cwd()
    read = ", ".join(str(f.relative_to(here) if f.is_relative_to(here) else f)
                     for f in discovery.files_read or [discovery.template])
    return f"the {discovery.kind} (read {read})"


def function_named(discovery: Discovery, name: str) -> str:
    """The logical id of the function (run here or skipped) that ``name`` names."""
    if name in discovery.functions or name in discovery.skipped:
        return name
    matches = sorted({logical_id for logical_id, names in discovery.names.items() if name in names})
    if len(matches) == 1:
        return matches[0]
    where = project_description(discovery)
    if matches:
        raise FunctionNotFound(
            f"{name!r} names several functions of {where}: {', '.join(matches)}; give one of "
            "these logical ids"
        )
    raise FunctionNotFound(
        f"no function {name!r} in {where}; Python functions there: {known_names(discovery)}. "
        "Give one of these names (`plldb functions` lists them), or pass --template, "
        "--cdk-out or --stage for another project"
    )


def known_names(discovery: Discovery) -> str:
    """``Logical (other, names)`` for each function that runs here; ``none`` if none does."""
    shown = []
    for logical_id in sorted(discovery.functions):
        others = discovery.names.get(logical_id)
        shown.append(f"{logical_id} ({', '.join(others)})" if others else logical_id)
    return ", ".join(shown) or "none"
