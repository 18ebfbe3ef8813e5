"""Where one function's code is, read from its (resolved) template properties.

Every way a function cannot run here raises :class:`NotLocal` with a one-line reason that
discovery keeps as the function's skip reason: S3 or inline code, an archive, a handler that
is not Python (Lambda Web Adapter's ``run.sh``), an unresolvable property, a missing file.
"""

from __future__ import annotations

import importlib.machinery
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plldb.project.model import LayerMapping
from plldb.project.templates import Resolver, Unresolved

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
SERVERLESS_LAYER = "AWS::Serverless::LayerVersion"
LAMBDA_LAYER = "AWS::Lambda::LayerVersion"
SERVERLESS_APPLICATION = "AWS::Serverless::Application"
CFN_STACK = "AWS::CloudFormation::Stack"
NESTED_SEPARATOR = "/"
WEB_ADAPTER_WRAPPER = "/opt/bootstrap"
S3_KEYS = {"Bucket", "S3Bucket"}
ASSET_PATH = "aws:asset:path"  # CDK's metadata: the folder (in cdk.out) the code was staged to


@dataclass(frozen=True)
class Scope:
    """One template file being read: where its paths start and how its values resolve."""

    base: Path  # the template's folder: CodeUri and ContentUri are relative to it
    build_dir: Path  # .aws-sam/build, or .aws-sam/build/<App> for a nested stack
    prefix: str  # "" or "App/" for a nested stack's functions
    resolver: Resolver
    resources: dict[str, Any]
    sources: dict[str, Path] | None  # build.toml's source folders when reading a built template
    ancestors: tuple[Path, ...] = ()  # the templates being read, outermost first (this one last)

    def name(self, logical_id: str) -> str:
        return f"{self.prefix}{logical_id}"


class NotLocal(Exception):
    """A function this machine cannot run; the text says why (one line, no function name)."""


_UNKNOWN = object()


def resolved(scope: Scope, properties: dict[str, Any], key: str, unknown: Any = _UNKNOWN) -> Any:
    """The property's value with intrinsics evaluated; unresolvable: ``unknown``, or the
    function is skipped with the reason when no fallback is given."""
    try:
        return scope.resolver.resolve(properties.get(key))
    except Unresolved as reason:
        if unknown is not _UNKNOWN:
            return unknown
        written = describe(properties.get(key))
        detail = str(reason) if str(reason).startswith(written) else f"{written}: {reason}"
        raise NotLocal(f"{key} {detail}") from None


def handler_of(scope: Scope, properties: dict[str, Any]) -> str:
    handler = resolved(scope, properties, "Handler")
    if not isinstance(handler, str) or not handler:
        raise NotLocal("no Handler in the template")
    if handler.endswith(".sh") or environment(properties).get("AWS_LAMBDA_EXEC_WRAPPER") == WEB_ADAPTER_WRAPPER:
        raise NotLocal(
            f"Lambda Web Adapter: handler {handler} starts a web server, not a Python handler "
            "plldb can call; run the web app locally instead"
        )
    if "." not in handler:
        raise NotLocal(f"handler {handler!r} is not module.function")
    return handler


def code_location(scope: Scope, kind: str, properties: dict[str, Any]) -> tuple[Path, Path | None]:
    """The function's code folder, and the module file when ``CodeUri`` names one ``.py``."""
    key = "CodeUri" if kind == SERVERLESS_FUNCTION else "Code"
    raw = properties.get(key)
    if "InlineCode" in properties or (isinstance(raw, dict) and "ZipFile" in raw):
        raise NotLocal("inline code")
    if isinstance(raw, dict) and S3_KEYS & raw.keys():  # before resolving: its parts may be !Ref
        raise NotLocal(f"code in S3 ({s3_uri(scope, raw)}), not on this machine")
    code = resolved(scope, properties, key)
    code = "." if code is None and kind == SERVERLESS_FUNCTION else code
    if isinstance(code, str) and code.startswith("s3://"):
        raise NotLocal(f"code in S3 ({code}), not on this machine")
    if not isinstance(code, str):
        raise NotLocal(f"code {describe(code)} is not a local path")
    location = (scope.base / code).resolve()
    if location.is_file() and location.suffix == ".py":
        return location.parent, location
    if location.is_file():
        raise NotLocal(
            f"code is the file {code}, not a folder: plldb imports from folders (unzip it and "
            "point CodeUri at the folder)"
        )
    if not location.is_dir():
        noun = "file" if location.suffix in (".zip", ".jar", ".py") else "folder"
        raise NotLocal(f"code {noun} {code} ({location}) not found")
    return location, None


def use_asset_folders(resources: dict[str, Any], base: Path) -> None:
    """Point S3 code at the staged asset folder its ``aws:asset:path`` names, when that folder
    is here (in place), as ``sam local invoke -t`` does with a CDK template: the template's
    S3 location is where ``cdk deploy`` uploads that same folder."""
    for resource in resources.values():
        kind = resource.get("Type") if isinstance(resource, dict) else None
        key = {LAMBDA_FUNCTION: "Code", LAMBDA_LAYER: "Content"}.get(kind or "")
        properties = resource.get("Properties") if key else None
        if not isinstance(properties, dict) or not isinstance(properties.get(key), dict):
            continue
        asset = (resource.get("Metadata") or {}).get(ASSET_PATH)
        if isinstance(asset, str) and S3_KEYS & properties[key].keys() and (base / asset).is_dir():
            properties[key] = asset


def s3_uri(scope: Scope, code: dict[str, Any]) -> str:
    """``s3://bucket/key`` with the parts resolved where they can be, as written otherwise."""
    parts = []
    for value in (code.get("Bucket", code.get("S3Bucket")), code.get("Key", code.get("S3Key"))):
        try:
            parts.append(str(scope.resolver.resolve(value)))
        except Unresolved:
            parts.append(describe(value))
    return "s3://" + "/".join(parts)


def architecture(scope: Scope, properties: dict[str, Any]) -> str:
    architectures = resolved(scope, properties, "Architectures", None)
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        return architectures[0]
    return "x86_64"


def environment(properties: dict[str, Any], resolver: Resolver | None = None) -> dict[str, Any]:
    """The function's variables; with a ``resolver``, each one that can be known here is
    resolved to its text (``!Sub``, ``!Ref Param``), the others stay as written (a mapping)."""
    environment = properties.get("Environment")
    variables = environment.get("Variables") if isinstance(environment, dict) else None
    if not isinstance(variables, dict):
        return {}
    if resolver is None:
        return dict(variables)
    return {name: _resolved_or_written(resolver, value) for name, value in variables.items()}


def _resolved_or_written(resolver: Resolver, value: Any) -> Any:
    try:
        resolved_value = resolver.resolve(value)
    except Unresolved:
        return value
    return resolved_value if isinstance(resolved_value, (str, int, float, bool)) else value


def int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def unique(paths: Iterable[Path]) -> tuple[Path, ...]:
    return tuple(dict.fromkeys(paths))


@dataclass
class FunctionLayers:
    """A function's layers split by where they are: local source ``python`` folders, ``sam
    build`` output folders, and the rest (text); ``mappings`` has every layer in order."""

    source_dirs: list[Path]
    built_dirs: list[Path]
    remote: list[str]
    mappings: list[LayerMapping]


def layers(scope: Scope, layers: Any) -> FunctionLayers:
    """Split a function's layers into local source dirs, local built dirs, and the rest.

    A layer referenced with ``!Ref`` to a LayerVersion of this template is local: its
    ``python/`` folder (or, for ``BuildMethod: python3.x`` layers whose source is the bare
    folder, the folder itself) is searched like ``/opt/python``. In a built template the
    layer's source folder is the one build.toml records. ARNs and parameters are returned
    as text: they are not available locally.
    """
    found = FunctionLayers([], [], [], [])
    for layer in layers if isinstance(layers, list) else [layers]:
        ref = layer.get("Ref") if isinstance(layer, dict) else None
        resource = scope.resources.get(ref) if isinstance(ref, str) else None
        if not isinstance(resource, dict) or resource.get("Type") not in (SERVERLESS_LAYER, LAMBDA_LAYER):
            found.remote.append(describe(layer))
            found.mappings.append(LayerMapping(describe(layer), None, "not in the template: runs only in AWS"))
            continue
        properties = resource.get("Properties") or {}
        content = properties.get("ContentUri" if resource["Type"] == SERVERLESS_LAYER else "Content")
        if not isinstance(content, str):
            found.remote.append(f"{ref} (content not local)")
            found.mappings.append(LayerMapping(ref, None, "content not local"))
            continue
        folder = (scope.sources or {}).get(scope.name(ref)) or (scope.base / content).resolve()
        build_method = str((resource.get("Metadata") or {}).get("BuildMethod", ""))
        if (folder / "python").is_dir():
            found.source_dirs.append(folder / "python")
            found.mappings.append(LayerMapping(ref, folder / "python"))
        elif build_method.startswith("python") and folder.is_dir():
            found.source_dirs.append(folder)
            found.mappings.append(LayerMapping(ref, folder))
        else:
            found.remote.append(f"{ref} (no python/ folder in {content})")
            found.mappings.append(LayerMapping(ref, None, f"no python/ folder in {content}"))
        built = scope.build_dir / ref / "python"
        if built.is_dir():
            found.built_dirs.append(built)
    return found


def describe(value: Any) -> str:
    """A template value as the user wrote it: intrinsics in their short ``!Tag`` form."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        key, argument = next(iter(value.items()))
        if key == "Ref" or key.startswith("Fn::"):
            if key == "Fn::GetAtt" and isinstance(argument, list):
                return "!GetAtt " + ".".join(str(part) for part in argument)
            return f"!{key.removeprefix('Fn::')} {describe(argument)}"
    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip()


def handler_module_candidates(handler: str) -> tuple[str, list[str]]:
    """The module of ``module.function`` as awslambdaric imports it, and its file stems."""
    module = handler.rsplit(".", 1)[0] if "." in handler else handler
    module = module.replace("/", ".")
    return module, module.split(".")


def check_handler_file(handler: str, code: Path, import_path: Iterable[Path]) -> None:
    """The handler's module exists on the import path (or is the one file ``CodeUri`` names)."""
    _, parts = handler_module_candidates(handler)
    relative = Path(*parts)
    if code.is_file():
        if code.parent / relative.with_suffix(".py") == code:
            return
        raise NotLocal(f"handler {handler} is not in {code.name}, the file CodeUri names")
    for folder in import_path:
        if (folder / relative / "__init__.py").is_file() or (folder / relative).is_dir():
            return
        if any((folder / relative.parent / f"{relative.name}{suffix}").is_file() for suffix in importlib.machinery.all_suffixes()):
            return
    shown = (code / relative.with_suffix(".py")).as_posix()
    raise NotLocal(f"handler {handler} -> {shown} not found")
