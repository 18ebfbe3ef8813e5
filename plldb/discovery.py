"""Find the local code of a stack's Python functions through the user's SAM/CFN template.

The deployed stack only knows physical names and logical ids; the template is the one place
that says where each function's code lives on this machine (``CodeUri``, ``Handler``,
``Globals``, local layers). :func:`discover` reads the template into :class:`LocalFunction`
records keyed by logical id, and :func:`map_stack_functions` joins them with the stack's
resources (``list_stack_resources``) to key them by physical function name, which is what
an invocation carries.
"""

from __future__ import annotations

import copy
import importlib.machinery
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TEMPLATE = "template.yaml"
BUILD_DIR = Path(".aws-sam") / "build"
SAMCONFIG_NAMES = ("samconfig.toml", "samconfig.yaml", "samconfig.yml")

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
LAMBDA_LAYER = "AWS::Lambda::LayerVersion"
SERVERLESS_APPLICATION = "AWS::Serverless::Application"
CFN_STACK = "AWS::CloudFormation::Stack"
NESTED_SEPARATOR = "/"


class DiscoveryError(Exception):
    """The template cannot be mapped to local code; the text is one line naming the cause."""


class TemplateNotFoundError(DiscoveryError):
    pass


class NotATemplateError(DiscoveryError):
    pass


class FunctionNotInTemplateError(DiscoveryError):
    pass


class HandlerNotFoundError(DiscoveryError):
    pass


@dataclass(frozen=True)
class LocalFunction:
    """Where one function's code lives here, and how to import it.

    ``import_path`` is the order the Lambda runtime would search: the code folder, the
    ``python`` folders of local layers, then the ``sam build`` output folders (third-party
    packages). ``package_dirs`` is the subset of ``import_path`` that holds built packages
    rather than the user's source (the executor shares those across functions).
    """

    logical_id: str
    handler: str
    runtime: str
    code_dir: Path
    import_path: tuple[Path, ...]
    package_dirs: tuple[Path, ...] = ()
    physical_name: str | None = None
    architecture: str = "x86_64"
    memory_size: int | None = None
    timeout: int | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    remote_layers: tuple[str, ...] = ()


@dataclass
class Discovery:
    """The result of reading a template: functions to run locally, and what was left out."""

    template: Path
    functions: dict[str, LocalFunction]  # by logical id (nested: "App/Function")
    skipped: dict[str, str] = field(default_factory=dict)  # logical id -> why not local
    warnings: list[str] = field(default_factory=list)


# --- YAML with CloudFormation tags ---------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """A safe loader that turns ``!Ref x`` into ``{"Ref": x}`` and ``!Sub s`` into
    ``{"Fn::Sub": s}``, the JSON form CloudFormation itself uses."""


def _construct_tag(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a SAM/CFN template (YAML or JSON) and check it has ``Resources``."""
    if not path.is_file():
        raise TemplateNotFoundError(f"template {path} not found")
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise NotATemplateError(f"template {path} is not valid YAML/JSON: {_first_line(exc)}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise NotATemplateError(f"template {path} is not a SAM/CloudFormation template (no Resources mapping)")
    return document


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# --- Templates -> LocalFunction ------------------------------------------------------------


def discover(
    template: Path | str = DEFAULT_TEMPLATE,
    python_version: tuple[int, int] = sys.version_info[:2],
) -> Discovery:
    """Read ``template`` (source or ``.aws-sam/build/template.yaml``) into local functions.

    A built template is read through the source template next to ``.aws-sam`` when there is
    one, so breakpoints set in the source folders are the ones that hit.
    """
    path = Path(template).resolve()
    if not path.is_file():
        raise TemplateNotFoundError(f"template {Path(template)} not found")
    warnings: list[str] = []
    project_dir = path.parent
    if _is_build_dir(path.parent):
        project_dir = path.parent.parent.parent
        source = _source_template(project_dir)
        if source is not None:
            path = source
        else:
            warnings.append(
                f"{template}: no source template next to .aws-sam; running the build copies "
                "(set breakpoints in .aws-sam/build)"
            )
    result = Discovery(template=path, functions={}, warnings=warnings)
    _discover_into(result, path, project_dir / BUILD_DIR, prefix="")
    for function in result.functions.values():
        _check_runtime(function, python_version, result.warnings)
    return result


def _is_build_dir(folder: Path) -> bool:
    return folder.name == BUILD_DIR.name and folder.parent.name == BUILD_DIR.parent.name


def _source_template(project_dir: Path) -> Path | None:
    for name in ("template.yaml", "template.yml", "template.json"):
        if (project_dir / name).is_file():
            return project_dir / name
    return None


def _discover_into(result: Discovery, path: Path, build_dir: Path, prefix: str) -> None:
    document = load_template(path)
    resources: dict[str, Any] = document["Resources"]
    globals_ = (document.get("Globals") or {}).get("Function") or {}
    base = path.parent
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        kind = resource.get("Type")
        properties = resource.get("Properties") or {}
        name = f"{prefix}{logical_id}"
        if kind == SERVERLESS_FUNCTION:
            properties = _merge_globals(globals_, properties)
        if kind in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
            try:
                function = _local_function(name, kind, properties, base, build_dir / logical_id, resources, build_dir)
            except _NotLocal as reason:
                result.skipped[name] = str(reason)
                continue
            result.functions[name] = function
        elif kind in (SERVERLESS_APPLICATION, CFN_STACK):
            location = properties.get("Location" if kind == SERVERLESS_APPLICATION else "TemplateURL")
            child = _local_file(base, location)
            if child is None:
                result.skipped[name] = f"nested stack {logical_id} has no local template"
            else:
                _discover_into(result, child, build_dir / logical_id, f"{name}{NESTED_SEPARATOR}")


def _local_file(base: Path, location: Any) -> Path | None:
    if not isinstance(location, str) or re.match(r"^[a-z0-9]+://", location):
        return None
    candidate = (base / location).resolve()
    return candidate if candidate.is_file() else None


def _merge_globals(globals_: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (function wins), lists add up (globals first),
    scalars are overridden by the function."""
    merged = copy.deepcopy(globals_)
    for key, value in properties.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        else:
            merged[key] = value
    return merged


class _NotLocal(Exception):
    """A function this machine cannot run (other runtime, image, inline code, S3 code)."""


def _local_function(
    name: str,
    kind: str,
    properties: dict[str, Any],
    base: Path,
    build_dir: Path,
    resources: dict[str, Any],
    build_root: Path,
) -> LocalFunction:
    if properties.get("PackageType") == "Image":
        raise _NotLocal("container image function")
    runtime = properties.get("Runtime")
    if not isinstance(runtime, str) or not runtime.startswith("python"):
        raise _NotLocal(f"runtime {runtime!r} is not Python")
    handler = properties.get("Handler")
    if not isinstance(handler, str) or not handler:
        raise DiscoveryError(f"function {name}: no Handler in the template")
    if kind == SERVERLESS_FUNCTION:
        if "InlineCode" in properties:
            raise _NotLocal("inline code")
        code = properties.get("CodeUri", ".")
    else:
        code = properties.get("Code")
    if not isinstance(code, str):
        raise _NotLocal("code is not a local path (S3 location or inline)")
    code_dir = (base / code).resolve()
    if not code_dir.is_dir():
        raise HandlerNotFoundError(f"function {name}: code folder {code} ({code_dir}) not found")

    layer_dirs, layer_packages, remote = _layers(properties.get("Layers") or [], base, resources, build_root)
    package_dirs = tuple(d for d in (build_dir, *layer_packages) if d.is_dir())
    import_path = (code_dir, *layer_dirs, *package_dirs)
    _check_handler_file(name, handler, code_dir, import_path)
    architectures = properties.get("Architectures") or ["x86_64"]
    environment = (properties.get("Environment") or {}).get("Variables") or {}
    return LocalFunction(
        logical_id=name,
        handler=handler,
        runtime=runtime,
        code_dir=code_dir,
        import_path=_unique(import_path),
        package_dirs=_unique(package_dirs),
        architecture=str(architectures[0]),
        memory_size=_int_or_none(properties.get("MemorySize")),
        timeout=_int_or_none(properties.get("Timeout")),
        environment=dict(environment) if isinstance(environment, dict) else {},
        remote_layers=tuple(remote),
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _unique(paths: Iterable[Path]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(paths))


def _layers(
    layers: list[Any], base: Path, resources: dict[str, Any], build_root: Path
) -> tuple[list[Path], list[Path], list[str]]:
    """Split a function's layers into local source dirs, local built dirs, and the rest.

    A layer referenced with ``!Ref`` to a LayerVersion of this template is local: its
    ``python/`` folder (or, for ``BuildMethod: python3.x`` layers whose source is the bare
    folder, the folder itself) is searched like ``/opt/python``. ARNs and parameters are
    returned as text: they are not available locally.
    """
    source_dirs: list[Path] = []
    built_dirs: list[Path] = []
    remote: list[str] = []
    for layer in layers:
        ref = layer.get("Ref") if isinstance(layer, dict) else None
        resource = resources.get(ref) if isinstance(ref, str) else None
        if not isinstance(resource, dict) or resource.get("Type") not in (SERVERLESS_LAYER, LAMBDA_LAYER):
            remote.append(_describe(layer))
            continue
        properties = resource.get("Properties") or {}
        content = properties.get("ContentUri" if resource["Type"] == SERVERLESS_LAYER else "Content")
        if not isinstance(content, str):
            remote.append(f"{ref} (content not local)")
            continue
        folder = (base / content).resolve()
        build_method = str((resource.get("Metadata") or {}).get("BuildMethod", ""))
        if (folder / "python").is_dir():
            source_dirs.append(folder / "python")
        elif build_method.startswith("python") and folder.is_dir():
            source_dirs.append(folder)
        else:
            remote.append(f"{ref} (no python/ folder in {content})")
        built = build_root / ref / "python"
        if built.is_dir():
            built_dirs.append(built)
    return source_dirs, built_dirs, remote


def _describe(layer: Any) -> str:
    return layer if isinstance(layer, str) else yaml.safe_dump(layer, default_flow_style=True).strip()


def handler_module_candidates(handler: str) -> tuple[str, list[str]]:
    """The module of ``module.function`` as awslambdaric imports it, and its file stems."""
    module = handler.rsplit(".", 1)[0] if "." in handler else handler
    module = module.replace("/", ".")
    return module, module.split(".")


def _check_handler_file(name: str, handler: str, code_dir: Path, import_path: Iterable[Path]) -> None:
    if "." not in handler:
        raise HandlerNotFoundError(f"function {name}: handler {handler!r} is not module.function")
    module, parts = handler_module_candidates(handler)
    relative = Path(*parts)
    for folder in import_path:
        if (folder / relative / "__init__.py").is_file() or (folder / relative).is_dir():
            return
        if any((folder / relative.parent / f"{relative.name}{suffix}").is_file() for suffix in importlib.machinery.all_suffixes()):
            return
    shown = (code_dir / relative.with_suffix(".py")).as_posix()
    raise HandlerNotFoundError(f"function {name}: handler {handler} -> {shown} not found")


def _check_runtime(function: LocalFunction, python_version: tuple[int, int], warnings: list[str]) -> None:
    match = re.fullmatch(r"python(\d+)\.(\d+)", function.runtime)
    if match and (int(match[1]), int(match[2])) != tuple(python_version):
        warnings.append(
            f"function {function.logical_id}: runtime {function.runtime} but plldb runs on "
            f"Python {python_version[0]}.{python_version[1]}; version-specific behaviour may differ"
        )


# --- Stack resources -> physical names -----------------------------------------------------


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
    A Lambda function of the stack that the template does not describe is an error: its
    invocations could not be run.
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
        elif logical_id in discovery.skipped:
            mapping.skipped[physical] = discovery.skipped[logical_id]
        else:
            raise FunctionNotInTemplateError(
                f"function {logical_id} ({physical}) of the stack has no match in {discovery.template.name}"
            )
    return mapping


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


# --- samconfig -----------------------------------------------------------------------------


def stack_name_from_samconfig(directory: Path | str = ".", environment: str = "default") -> str | None:
    """The ``stack_name`` that ``sam deploy`` would use, or None when there is none."""
    for name in SAMCONFIG_NAMES:
        path = Path(directory) / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) if name.endswith((".yaml", ".yml")) else _parse_toml(text)
        except (yaml.YAMLError, ValueError) as exc:
            raise DiscoveryError(f"{path} cannot be parsed: {_first_line(exc)}") from exc
        for command in ("deploy", "global"):
            value = (((data or {}).get(environment) or {}).get(command) or {}).get("parameters", {}).get("stack_name")
            if isinstance(value, str) and value:
                return value
    return None


def _parse_toml(text: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    return _parse_simple_toml(text)


_TOML_TABLE = re.compile(r"^\[\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\s*(#.*)?$")
_TOML_STRING = re.compile(r"^([A-Za-z0-9_\-]+)\s*=\s*\"((?:[^\"\\]|\\.)*)\"\s*(#.*)?$")


def _parse_simple_toml(text: str) -> dict[str, Any]:
    """Enough TOML for samconfig on Python 3.10 (no tomllib): tables and string keys."""
    data: dict[str, Any] = {}
    table = data
    for line in text.splitlines():
        line = line.strip()
        if match := _TOML_TABLE.match(line):
            table = data
            for part in match[1].split("."):
                table = table.setdefault(part.strip().strip('"'), {})
        elif match := _TOML_STRING.match(line):
            table[match[1]] = match[2].encode().decode("unicode_escape")
    return data
