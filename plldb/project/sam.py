"""Read a SAM/CloudFormation template into :class:`~plldb.project.model.LocalFunction` records.

The deployed stack only knows physical names and logical ids; the template is the one place
that says where each function's code lives on this machine (``CodeUri``, ``Handler``,
``Globals``, local layers). A function that cannot run here never fails the whole template:
it is ``skipped`` with its reason, and the caller shows that as a warning. Template parsing
and intrinsic functions are in :mod:`plldb.project.templates`; what the SAM CLI wrote down
(samconfig, build.toml) in :mod:`plldb.project.samconfig`. The CDK and Serverless readers
hand their synthesized templates to :func:`discover_document`.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

from plldb.project.function_code import (
    CFN_STACK,
    LAMBDA_FUNCTION,
    NESTED_SEPARATOR,
    SERVERLESS_APPLICATION,
    SERVERLESS_FUNCTION,
    NotLocal,
    Scope,
    architecture,
    check_handler_file,
    code_location,
    describe,
    environment,
    handler_of,
    int_or_none,
    layers,
    resolved,
    unique,
    use_asset_folders,
)
from plldb.project.model import BUILD_DIR, Discovery, LocalFunction
from plldb.project.names import record_template_names
from plldb.project.python_version import version_warnings
from plldb.project.pythonpath import map_pythonpath
from plldb.project.samconfig import (
    build_sources,
    config_files,
    parameter_overrides,
    stack_name_from_samconfig,
)
from plldb.project.templates import (
    DiscoveryError,
    Resolver,
    TemplateNotFoundError,
    Unresolved,
    expand_foreach,
    load_template,
    parameter_values,
)


def discover_sam(template: Path | str, python_version: tuple[int, int] = sys.version_info[:2]) -> Discovery:
    """Read a SAM/CloudFormation ``template`` (source or ``.aws-sam/build/template.yaml``).

    Parameters take their samconfig ``parameter_overrides``, else their defaults. A built
    template's functions run from the source folders ``.aws-sam/build.toml`` records (so
    breakpoints set in the source hit); where it records none, from the build copies, with
    a warning. ``Discovery.stack_name`` is samconfig's ``stack_name``.
    """
    given = Path(template)
    path = given.resolve()
    if not path.is_file():
        raise TemplateNotFoundError(
            f"template {given} not found (looked in {path.parent}): run plldb in the folder of "
            "your SAM project (cd there) or pass --template PATH"
        )
    built = _is_build_dir(path.parent)
    project_dir = path.parent.parent.parent if built else path.parent
    result = Discovery(template=path, functions={}, files_read=[path, *config_files(project_dir)],
                       stack_name=stack_name_from_samconfig(project_dir))
    overrides = parameter_overrides(project_dir)
    sources = build_sources(project_dir) if built else None
    _discover_into(result, path, project_dir / BUILD_DIR, "", overrides, sources)
    if result.build_copies:
        result.warnings.append(
            f"{given}: .aws-sam/build.toml records no source folder for {', '.join(result.build_copies)}; "
            "running the build copies (set breakpoints in .aws-sam/build, or pass --template "
            "with the source template)"
        )
    result.warnings += version_warnings(list(result.functions.values()), python_version)
    return result


def _is_build_dir(folder: Path) -> bool:
    return folder.name == BUILD_DIR.name and folder.parent.name == BUILD_DIR.parent.name


def _discover_into(
    result: Discovery,
    path: Path,
    build_dir: Path,
    prefix: str,
    parameters: dict[str, Any],
    sources: dict[str, Path] | None,
    ancestors: tuple[Path, ...] = (),
) -> None:
    discover_document(result, load_template(path), path, build_dir, prefix, parameters, sources, ancestors)


def discover_document(
    result: Discovery,
    document: dict[str, Any],
    path: Path,
    build_dir: Path,
    prefix: str = "",
    parameters: dict[str, Any] | None = None,
    sources: dict[str, Path] | None = None,
    ancestors: tuple[Path, ...] = (),
) -> None:
    """Add the functions of an already loaded template to ``result``.

    The CDK and Serverless Framework readers load their synthesized template themselves
    and point each function's code at a local folder before handing it here, so every
    project kind shares one reading of ``Handler``, ``Runtime``, layers and environment.
    """
    resolver = Resolver(document, parameter_values(document, parameters or {}))
    resources, problems = expand_foreach(document["Resources"], resolver)
    result.warnings += [f"{path.name}: {problem}" for problem in problems]
    globals_ = (document.get("Globals") or {}).get("Function") or {}
    globals_ = globals_ if isinstance(globals_, dict) else {}
    scope = Scope(path.parent, build_dir, prefix, resolver, resources, sources, (*ancestors, path.resolve()))
    use_asset_folders(resources, path.parent)
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        kind = resource.get("Type")
        properties = resource.get("Properties") or {}
        name = scope.name(logical_id)
        if kind not in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION, SERVERLESS_APPLICATION, CFN_STACK):
            continue
        if kind in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
            record_template_names(result, name, resource, resolver)
        try:
            properties = _properties(scope, properties)
        except NotLocal as reason:
            result.skipped[name] = str(reason)
            continue
        if kind == SERVERLESS_FUNCTION:
            properties = _merge_globals(globals_, properties)
        if kind in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
            try:
                result.functions[name] = _local_function(result, scope, logical_id, kind, properties)
            except NotLocal as reason:
                result.skipped[name] = str(reason)
        else:
            _discover_nested(result, scope, logical_id, kind, properties)


def _properties(scope: Scope, properties: Any) -> dict[str, Any]:
    """A resource's Properties; a whole-block intrinsic (``!If [Cond, {...}, {...}]``) is
    evaluated first."""
    if isinstance(properties, dict) and len(properties) == 1 and next(iter(properties)).startswith("Fn::"):
        try:
            properties = scope.resolver.resolve(properties)
        except Unresolved as reason:
            raise NotLocal(f"Properties {describe(properties)}: {reason}") from None
    if not isinstance(properties, dict):
        raise NotLocal(f"Properties {describe(properties)} is not a mapping")
    return properties


def _discover_nested(result: Discovery, scope: Scope, logical_id: str, kind: str, properties: dict[str, Any]) -> None:
    """Follow a nested stack whose template is a local file; otherwise skip it with why."""
    name = scope.name(logical_id)
    location = properties.get("Location" if kind == SERVERLESS_APPLICATION else "TemplateURL")
    try:
        child = _nested_template(scope, location)
        _refuse_cycle(scope, name, location, child)
        overrides = _known_values(scope.resolver, properties.get("Parameters"))
        _discover_into(result, child, scope.build_dir / logical_id, f"{name}{NESTED_SEPARATOR}", overrides,
                       scope.sources, scope.ancestors)
    except NestingCycle:
        raise
    except (NotLocal, DiscoveryError) as reason:
        result.skipped[name] = f"nested stack: {reason}"


class NestingCycle(DiscoveryError):
    """A nested stack whose template is one of the templates that contain it."""


def _refuse_cycle(scope: Scope, name: str, location: Any, child: Path) -> None:
    """A template that nests itself (directly or through others) cannot be deployed; reading
    it would never end."""
    if child not in scope.ancestors:
        return
    chain = " -> ".join(p.name for p in scope.ancestors[scope.ancestors.index(child):])
    itself = "the template itself" if child == scope.ancestors[-1] else "a template that contains it"
    raise NestingCycle(
        f"nested stack {name}: its template {describe(location)} is {itself} ({chain} -> {child.name}), "
        "so it would nest without end (CloudFormation cannot deploy that): point it at the "
        "child application's own template"
    )


def _nested_template(scope: Scope, location: Any) -> Path:
    if isinstance(location, dict) and "ApplicationId" in location:
        raise NotLocal(f"Serverless Application Repository app {describe(location['ApplicationId'])}, not local")
    try:
        location = scope.resolver.resolve(location)
    except Unresolved as reason:
        raise NotLocal(f"template location {describe(location)}: {reason}") from None
    if not isinstance(location, str) or re.match(r"^[a-z0-9]+://", location):
        raise NotLocal(f"template {describe(location)} is not a local file")
    candidate = (scope.base / location).resolve()
    if not candidate.is_file():
        raise NotLocal(f"template {location} ({candidate}) not found")
    return candidate


def _known_values(resolver: Resolver, values: Any) -> dict[str, Any]:
    """The nested stack's ``Parameters`` that resolve here; the others keep their defaults."""
    known: dict[str, Any] = {}
    for key, value in (values if isinstance(values, dict) else {}).items():
        try:
            known[key] = resolver.resolve(value)
        except Unresolved:
            continue
    return known


# Lists the function's own value replaces (one architecture per function, not the sum).
_REPLACED_LISTS = frozenset({"Architectures"})


def _merge_globals(globals_: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: maps merge (function wins), lists add up (globals first),
    scalars are overridden by the function."""
    merged = copy.deepcopy(globals_)
    for key, value in properties.items():
        current = merged.get(key)
        if key in _REPLACED_LISTS:
            merged[key] = value
        elif isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        else:
            merged[key] = value
    return merged


def _local_function(
    result: Discovery, scope: Scope, logical_id: str, kind: str, properties: dict[str, Any]
) -> LocalFunction:
    name = scope.name(logical_id)
    if resolved(scope, properties, "PackageType") == "Image":
        raise NotLocal("container image function")
    runtime = resolved(scope, properties, "Runtime")
    if runtime is None:
        raise NotLocal("no Runtime in the template")
    if not isinstance(runtime, str) or not runtime.startswith("python"):
        raise NotLocal(f"runtime {runtime!r} is not Python")
    handler = handler_of(scope, properties)
    code_dir, module_file = code_location(scope, kind, properties)
    if scope.sources is not None:
        source = scope.sources.get(name)
        if source is not None and source.is_dir():
            code_dir = source
        else:
            result.build_copies.append(name)

    found = layers(scope, properties.get("Layers") or [])
    variables = environment(properties, scope.resolver)
    package_dirs = tuple(d for d in (scope.build_dir / logical_id, *found.built_dirs) if d.is_dir() and d != code_dir)
    mapped = map_pythonpath(variables.get("PYTHONPATH"), code_dir, found.source_dirs)
    if mapped.unmapped:
        result.warnings.append(
            f"{name}: PYTHONPATH entries {', '.join(mapped.unmapped)} name no folder of its code or "
            "layers here; plldb searches only the ones under /var/task and /opt"
        )
    import_path = (code_dir, *mapped.folders, *found.source_dirs, *package_dirs)
    check_handler_file(handler, module_file or code_dir, import_path if module_file is None else (code_dir,))
    physical = resolved(scope, properties, "FunctionName", None)
    return LocalFunction(
        logical_id=name,
        handler=handler,
        runtime=runtime,
        code_dir=code_dir,
        import_path=unique(import_path),
        package_dirs=unique(package_dirs),
        physical_name=physical if isinstance(physical, str) else None,
        architecture=architecture(scope, properties),
        memory_size=int_or_none(resolved(scope, properties, "MemorySize", None)),
        timeout=int_or_none(resolved(scope, properties, "Timeout", None)),
        environment=variables,
        remote_layers=tuple(found.remote),
        layers=tuple(found.mappings),
        build_hint=(f"`sam build` (it installs requirements.txt into {BUILD_DIR / logical_id})"
                    if (code_dir / "requirements.txt").is_file() else None),
    )
