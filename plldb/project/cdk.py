"""Find the local code of an AWS CDK app's Python functions through ``cdk.out``.

``cdk synth`` writes one CloudFormation template per stack (``cdk.out/manifest.json`` says
which file belongs to which stack name) and copies each function's code into an asset
folder (``cdk.out/asset.<hash>``, named by the function's ``aws:asset:path`` metadata).
Breakpoints must bind in the files the developer edits, so each asset is mapped back to the
project folder holding the same files: the folder that contains the handler module with the
same bytes and whose every file is in the asset unchanged (a bundled ``PythonFunction``
asset also holds its installed requirements, which then stay on the import path behind the
source). ``cdk synth --no-staging`` writes the source folder itself as the asset path. An
asset that matches no folder is run as it is, with a warning that breakpoints go there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from plldb.project.function_code import (
    ASSET_PATH,
    CFN_STACK,
    LAMBDA_FUNCTION,
    LAMBDA_LAYER,
    NESTED_SEPARATOR,
    handler_module_candidates,
    unique,
)
from plldb.project.model import Discovery
from plldb.project.python_version import version_warnings
from plldb.project.sam import discover_document
from plldb.project.templates import DiscoveryError

CDK_JSON = "cdk.json"
CDK_OUT = "cdk.out"
MANIFEST = "manifest.json"
STACK_ARTIFACT = "aws:cloudformation:stack"
SYNTH = "cdk synth"
_NOT_SOURCE = {CDK_OUT, "node_modules", "__pycache__", "venv", "env", "site-packages"}


def in_cdk_out(path: Path) -> bool:
    return CDK_OUT in path.parts


def discover_cdk(
    path: Path, python_version: tuple[int, int], stack_name: str | None, cdk_out: Path | None = None
) -> Discovery:
    """The functions of one stack of the CDK app at ``path`` (the app folder, a file in it,
    or a template inside ``cdk.out``); ``cdk_out`` is the synthesized folder when it is not
    the app's ``cdk.out`` (``cdk synth --output DIR``)."""
    cdk_out, project = _locations(path) if cdk_out is None else _given_output(path, cdk_out)
    manifest = cdk_out / MANIFEST
    if not manifest.is_file():
        raise DiscoveryError(
            f"CDK app {project}: no synthesized app ({manifest} not found): run `{SYNTH}` in "
            f"{project} first (plldb reads the templates and assets it writes to {CDK_OUT})"
        )
    template, name = _stack_template(cdk_out, manifest, path, stack_name)
    result = Discovery(template=template, functions={}, kind="AWS CDK app", stack_name=name,
                       files_read=[manifest])
    sources: dict[str, Path] = {}
    assets: dict[str, Path] = {}
    _read_stack(result, project, cdk_out, template, "", sources, assets)
    for logical_id, asset in assets.items():
        function = result.functions.get(logical_id)
        if function is None:
            continue
        source = sources.get(logical_id)
        if source is None:
            result.warnings.append(
                f"{logical_id}: no folder of {project} holds the code of asset {asset.relative_to(project)}; "
                f"running the asset folder itself: set breakpoints in {asset.relative_to(project)} "
                f"(or run `{SYNTH} --no-staging` so the template names the source folder)"
            )
        else:
            result.functions[logical_id] = _run_from_source(function, source, asset)
    result.warnings += _stale_warnings(project, manifest)
    result.warnings += version_warnings(list(result.functions.values()), python_version)
    return result


def _read_stack(
    result: Discovery, project: Path, cdk_out: Path, template: Path, prefix: str,
    sources: dict[str, Path], assets: dict[str, Path],
) -> None:
    """Add one synthesized template's functions, and those of its nested stacks (CDK writes
    each as ``<id>.nested.template.json``, named by the stack resource's asset path), named
    ``Nested/Function`` as :func:`plldb.project.stack_mapping.map_stack_functions` expects."""
    result.files_read.append(template)
    document = json.loads(template.read_text())
    found_sources, found_assets = _map_assets(project, cdk_out, document)
    sources.update({f"{prefix}{k}": v for k, v in found_sources.items()})
    assets.update({f"{prefix}{k}": v for k, v in found_assets.items()})
    resources = document.get("Resources") or {}
    nested = {k: child for k, r in resources.items() if (child := _nested_template(cdk_out, r)) is not None}
    for logical_id in nested:
        del resources[logical_id]  # read below from cdk.out, not from its S3 TemplateURL
    discover_document(result, document, template, cdk_out / "no-build", prefix)
    for logical_id, child in nested.items():
        if child.is_file():
            _read_stack(result, project, cdk_out, child, f"{prefix}{logical_id}{NESTED_SEPARATOR}", sources, assets)
        else:
            result.skipped[f"{prefix}{logical_id}"] = f"nested stack: template {child} not found: run `{SYNTH}`"


def _nested_template(cdk_out: Path, resource: Any) -> Path | None:
    if not isinstance(resource, dict) or resource.get("Type") != CFN_STACK:
        return None
    asset_path = (resource.get("Metadata") or {}).get(ASSET_PATH)
    return cdk_out / asset_path if isinstance(asset_path, str) and asset_path.endswith(".json") else None


def _locations(path: Path) -> tuple[Path, Path]:
    """The ``cdk.out`` folder and the app folder it belongs to."""
    if in_cdk_out(path):
        parts = path.parts
        cdk_out = Path(*parts[: len(parts) - parts[::-1].index(CDK_OUT)])
        return cdk_out, cdk_out.parent
    folder = path if path.is_dir() else path.parent
    return folder / CDK_OUT, folder


def _given_output(path: Path, cdk_out: Path) -> tuple[Path, Path]:
    """The ``--cdk-out`` folder, which must exist, and the app folder (``path``'s)."""
    project = path if path.is_dir() else path.parent
    if not cdk_out.is_dir():
        raise DiscoveryError(
            f"CDK app {project}: --cdk-out folder {cdk_out} not found: pass the folder "
            f"`{SYNTH} --output` writes (default {CDK_OUT}), or run `{SYNTH} --output {cdk_out}`"
        )
    return cdk_out.resolve(), project


def _stack_template(cdk_out: Path, manifest: Path, path: Path, stack_name: str | None) -> tuple[Path, str]:
    """The template file and deployed stack name of the wanted stack.

    A stack's name is ``properties.stackName`` when the app sets one, else its artifact id,
    the way CDK deploys it. With no name given: the template ``path`` points at, else the
    app's only stack.
    """
    artifacts = json.loads(manifest.read_text()).get("artifacts") or {}
    stacks: dict[str, Path] = {}
    for artifact_id, artifact in artifacts.items():
        if artifact.get("type") != STACK_ARTIFACT:
            continue
        properties = artifact.get("properties") or {}
        stacks[properties.get("stackName") or artifact_id] = cdk_out / properties.get("templateFile", "")
    chosen = [n for n, t in stacks.items() if (n == stack_name if stack_name else t == path)]
    if not chosen and stack_name is None and len(stacks) == 1:
        chosen = list(stacks)
    if len(chosen) != 1:
        known = ", ".join(sorted(stacks)) or "none"
        wanted = f"no stack {stack_name}" if stack_name else "several stacks"
        raise DiscoveryError(
            f"CDK app: {wanted} in {manifest} (stacks: {known}); pass --stack-name with one of "
            f"them, or run `{SYNTH}` if the app changed"
        )
    template = stacks[chosen[0]]
    if not template.is_file():
        raise DiscoveryError(f"CDK app: template {template} of stack {chosen[0]} not found: run `{SYNTH}`")
    return template, chosen[0]


def _map_assets(project: Path, cdk_out: Path, document: dict[str, Any]) -> tuple[dict[str, Path], dict[str, Path]]:
    """Point each Python function's ``Code`` at its asset folder (in place) and find the
    source folder of each asset; returns (sources, assets) by logical id."""
    sources: dict[str, Path] = {}
    assets: dict[str, Path] = {}
    for logical_id, resource in (document.get("Resources") or {}).items():
        kind = resource.get("Type") if isinstance(resource, dict) else None
        if kind not in (LAMBDA_FUNCTION, LAMBDA_LAYER):
            continue
        asset_path = (resource.get("Metadata") or {}).get(ASSET_PATH)
        properties = resource.get("Properties") or {}
        if not isinstance(asset_path, str) or not isinstance(properties, dict):
            continue
        folder = (cdk_out / asset_path).resolve()  # --no-staging: an absolute source path
        properties["Code" if kind == LAMBDA_FUNCTION else "Content"] = str(folder)
        if kind == LAMBDA_LAYER or not folder.is_relative_to(cdk_out):
            continue
        assets[logical_id] = folder
        source = _source_of(project, folder, properties.get("Handler"))
        if source is not None:
            sources[logical_id] = source
    return sources, assets


def _source_of(project: Path, asset: Path, handler: Any) -> Path | None:
    """The project folder whose files the asset copied: it holds the handler module with the
    same bytes, and every one of its files is in the asset unchanged."""
    if not isinstance(handler, str) or not asset.is_dir():
        return None
    _, parts = handler_module_candidates(handler)
    module = Path(*parts).with_suffix(".py")
    copied = asset / module
    if not copied.is_file():
        return None
    for folder in _source_folders(project):
        candidate = folder / module
        if candidate.is_file() and candidate.read_bytes() == copied.read_bytes() and _all_copied(folder, asset):
            return folder
    return None


def _all_copied(folder: Path, asset: Path) -> bool:
    for file in _source_files(folder):
        copy = asset / file.relative_to(folder)
        if not copy.is_file() or copy.read_bytes() != file.read_bytes():
            return False
    return True


def _source_folders(project: Path) -> Iterator[Path]:
    for root, dirs, _ in os.walk(project):
        dirs[:] = sorted(d for d in dirs if _is_source_dir(Path(root) / d))
        yield Path(root)


def _source_files(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if _is_source_dir(Path(root) / d)]
        yield from (Path(root) / f for f in files if not f.startswith("."))


def _is_source_dir(folder: Path) -> bool:
    """Not a synthesized folder (it holds a ``cdk.out`` version file, whatever its name), a
    virtualenv, installed packages or a hidden/tool folder."""
    name = folder.name
    return not (name.startswith(".") or name in _NOT_SOURCE or (folder / "pyvenv.cfg").exists()
                or (folder / CDK_OUT).is_file())


def _run_from_source(function: Any, source: Path, asset: Path) -> Any:
    """Source first; the asset stays behind it for the requirements bundling installed."""
    extra = asset if any(p.is_dir() and not (source / p.name).exists() for p in asset.iterdir()) else None
    package_dirs = unique((*function.package_dirs, extra)) if extra else function.package_dirs
    import_path = unique((source, *function.import_path[1:], *([extra] if extra else [])))
    return replace(function, code_dir=source, import_path=import_path, package_dirs=package_dirs)


def _stale_warnings(project: Path, manifest: Path) -> list[str]:
    """A warning when a source file changed after the last synth."""
    synthesized = manifest.stat().st_mtime
    newer = [f for f in _source_files(project) if f.stat().st_mtime > synthesized]
    if not newer:
        return []
    shown = ", ".join(str(f.relative_to(project)) for f in newer[:3]) + (" ..." if len(newer) > 3 else "")
    return [
        f"{manifest.parent} is older than the source ({shown} changed after the last synth): "
        f"plldb may map functions to outdated templates; run `{SYNTH}`"
    ]
