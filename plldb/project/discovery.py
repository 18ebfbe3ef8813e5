"""Find the local code of a stack's Python functions through the user's SAM/CFN template.

The deployed stack only knows physical names and logical ids; the template is the one place
that says where each function's code lives on this machine (``CodeUri``, ``Handler``,
``Globals``, local layers). :func:`discover` reads the template into :class:`LocalFunction`
records keyed by logical id; :mod:`plldb.project.stack_mapping` joins them with the deployed
stack's resources to key them by physical function name, which is what an invocation
carries.

A function that cannot run here never fails the whole template: it is ``skipped`` with its
reason, and the caller shows that as a warning. Template parsing and intrinsic functions are
in :mod:`plldb.project.templates`; what the SAM CLI wrote down (samconfig, build.toml) in
:mod:`plldb.project.samconfig`.
"""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass, field
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
)
from plldb.project.samconfig import build_sources, config_files, parameter_overrides
from plldb.project.samconfig import stack_name_from_samconfig as stack_name_from_samconfig
from plldb.project.templates import DiscoveryError as DiscoveryError
from plldb.project.templates import NotATemplateError as NotATemplateError
from plldb.project.templates import (
    Resolver,
    TemplateNotFoundError,
    Unresolved,
    expand_foreach,
    load_template,
    parameter_values,
)

DEFAULT_TEMPLATE = "template.yaml"
BUILD_DIR = Path(".aws-sam") / "build"



@dataclass(frozen=True)
class LocalFunction:
    """Where one function's code lives here, and how to import it.

    ``import_path`` is the order the Lambda runtime would search: the code folder, the
    ``python`` folders of local layers, then the ``sam build`` output folders (third-party
    packages). ``package_dirs`` is the subset of ``import_path`` that holds built packages
    rather than the user's source (the executor shares those across functions); the code
    folder is never one of them, even when it is a build folder itself.
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
    build_copies: list[str] = field(default_factory=list)  # functions run from .aws-sam/build
    kind: str = "SAM/CloudFormation template"  # the kind of project found, for messages
    files_read: list[Path] = field(default_factory=list)  # what discovery read, for messages
    stack_name: str | None = None  # the stack the project's tool deploys (CDK, Serverless, samconfig)


# --- Templates -> LocalFunction ------------------------------------------------------------


def discover(
    template: Path | str = DEFAULT_TEMPLATE,
    python_version: tuple[int, int] = sys.version_info[:2],
    stack_name: str | None = None,
    stage: str | None = None,
    cdk_out: Path | str | None = None,
) -> Discovery:
    """Read ``template`` (source or ``.aws-sam/build/template.yaml``) into local functions.

    Parameters take their samconfig ``parameter_overrides``, else their defaults. A built
    template's functions run from the source folders ``.aws-sam/build.toml`` records (so
    breakpoints set in the source hit); where it records none, from the build copies, with
    a warning. A CDK app (``cdk.json``, or a template inside ``cdk.out``) and a Serverless
    Framework service (``serverless.yml``) are read from what their tool synthesized
    (:mod:`plldb.project.cdk`, :mod:`plldb.project.serverless`); ``stack_name`` picks the
    CDK stack and, as ``<service>-<stage>``, the Serverless stage unless ``stage`` is given;
    ``cdk_out`` names the synthesized folder of a CDK app (``cdk synth --output``) and makes
    the project one. ``Discovery.stack_name`` is the stack the project's tool deploys (for a
    SAM project, samconfig's ``stack_name``).
    """
    given = Path(template)
    path = given.resolve()
    other = _other_project_kind(path, python_version, stack_name, stage, cdk_out)
    if other is not None:
        return other
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


def project_found(template: Path | str) -> bool:
    """Whether ``template`` names something :func:`discover` reads: an existing template, or
    (a template that need not exist in) a CDK app or a Serverless service folder."""
    from plldb.project import cdk as cdk_project
    from plldb.project import serverless as serverless_project

    path = Path(template).resolve()
    folder = path if path.is_dir() else path.parent
    return path.is_file() or cdk_project.in_cdk_out(path) or any(
        (folder / name).is_file() for name in (cdk_project.CDK_JSON, serverless_project.SERVERLESS_YML))


def _other_project_kind(
    path: Path, python_version: tuple[int, int], stack_name: str | None, stage: str | None,
    cdk_out: Path | str | None,
) -> Discovery | None:
    """A CDK app's or Serverless service's discovery when ``path`` (a template that need not
    exist, or a folder) belongs to one, or ``cdk_out`` is given; None for a SAM/CloudFormation
    template."""
    from plldb.project import cdk as cdk_project
    from plldb.project import serverless as serverless_project

    if cdk_out is not None:
        return cdk_project.discover_cdk(path, python_version, stack_name, Path(cdk_out))
    if path.is_file() and not cdk_project.in_cdk_out(path):
        return None
    folder = path if path.is_dir() else path.parent
    if cdk_project.in_cdk_out(path) or (folder / cdk_project.CDK_JSON).is_file():
        return cdk_project.discover_cdk(path, python_version, stack_name)
    if (folder / serverless_project.SERVERLESS_YML).is_file():
        return serverless_project.discover_serverless(folder, python_version, stage, stack_name)
    return None


def _is_build_dir(folder: Path) -> bool:
    return folder.name == BUILD_DIR.name and folder.parent.name == BUILD_DIR.parent.name


def _discover_into(
    result: Discovery,
    path: Path,
    build_dir: Path,
    prefix: str,
    parameters: dict[str, Any],
    sources: dict[str, Path] | None,
) -> None:
    discover_document(result, load_template(path), path, build_dir, prefix, parameters, sources)


def discover_document(
    result: Discovery,
    document: dict[str, Any],
    path: Path,
    build_dir: Path,
    prefix: str = "",
    parameters: dict[str, Any] | None = None,
    sources: dict[str, Path] | None = None,
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
    scope = Scope(path.parent, build_dir, prefix, resolver, resources, sources)
    for logical_id, resource in resources.items():
        if not isinstance(resource, dict):
            continue
        kind = resource.get("Type")
        properties = resource.get("Properties") or {}
        name = scope.name(logical_id)
        if kind not in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION, SERVERLESS_APPLICATION, CFN_STACK):
            continue
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
        overrides = _known_values(scope.resolver, properties.get("Parameters"))
        _discover_into(result, child, scope.build_dir / logical_id, f"{name}{NESTED_SEPARATOR}", overrides, scope.sources)
    except (NotLocal, DiscoveryError) as reason:
        result.skipped[name] = f"nested stack: {reason}"


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

    layer_dirs, layer_packages, remote = layers(scope, properties.get("Layers") or [])
    package_dirs = tuple(d for d in (scope.build_dir / logical_id, *layer_packages) if d.is_dir() and d != code_dir)
    import_path = (code_dir, *layer_dirs, *package_dirs)
    check_handler_file(handler, module_file or code_dir, import_path if module_file is None else (code_dir,))
    return LocalFunction(
        logical_id=name,
        handler=handler,
        runtime=runtime,
        code_dir=code_dir,
        import_path=unique(import_path),
        package_dirs=unique(package_dirs),
        architecture=architecture(scope, properties),
        memory_size=int_or_none(resolved(scope, properties, "MemorySize", None)),
        timeout=int_or_none(resolved(scope, properties, "Timeout", None)),
        environment=environment(properties),
        remote_layers=tuple(remote),
    )


def version_warnings(functions: list[LocalFunction], python_version: tuple[int, int]) -> list[str]:
    """One warning per template runtime that differs from the Python plldb runs on.

    Handlers run inside the plldb process, so its interpreter is the one they get; the
    warning says how to install plldb under the runtime's Python.
    """
    by_runtime: dict[str, list[str]] = {}
    for function in functions:
        match = re.fullmatch(r"python(\d+)\.(\d+)", function.runtime)
        if match and (int(match[1]), int(match[2])) != tuple(python_version):
            by_runtime.setdefault(function.runtime, []).append(function.logical_id)
    warnings = []
    for runtime, names in by_runtime.items():
        version = runtime.removeprefix("python")
        who = "all functions" if len(names) == len(functions) > 1 else "function " + ", ".join(names)
        warnings.append(
            f"{who}: runtime {runtime} but plldb runs handlers on Python "
            f"{python_version[0]}.{python_version[1]}; version-specific behaviour may differ. To match, "
            f"run plldb under Python {version}: pipx install --python python{version} plldb "
            f"(or uv tool install --python {version} plldb)"
        )
    return warnings
