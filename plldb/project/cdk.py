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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plldb.project.cdk_assets import (
    CDK_OUT,
    SYNTH,
    bundled_extra,
    layer_source_of,
    run_from_source,
    source_of,
    stale_files,
    stale_warning,
    with_bundled_layers,
)
from plldb.project.function_code import (
    ASSET_PATH,
    CFN_STACK,
    LAMBDA_FUNCTION,
    LAMBDA_LAYER,
    NESTED_SEPARATOR,
)
from plldb.project.model import Discovery
from plldb.project.python_version import version_warnings
from plldb.project.sam import discover_document
from plldb.project.templates import DiscoveryError

CDK_JSON = "cdk.json"
MANIFEST = "manifest.json"
STACK_ARTIFACT = "aws:cloudformation:stack"


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
    assets = _Assets()
    _read_stack(result, project, cdk_out, template, "", assets)
    newer = stale_files(project, manifest)
    if newer:
        result.warnings.append(stale_warning(project, manifest, newer))
    for logical_id, asset in assets.functions.items():
        function = result.functions.get(logical_id)
        source = assets.sources.get(logical_id)
        if function is not None and source is not None:
            result.functions[logical_id] = run_from_source(function, source, asset)
        elif function is not None:
            result.warnings.append(_unmapped(logical_id, project, asset, bool(newer)))
    for logical_id, asset in assets.unmapped_layers.items():
        result.warnings.append(_unmapped(f"layer {logical_id}", project, asset / "python", bool(newer)))
    result.functions = {k: with_bundled_layers(f, assets.bundled_layers) for k, f in result.functions.items()}
    result.warnings += version_warnings(list(result.functions.values()), python_version)
    return result


@dataclass
class _Assets:
    """What the app's assets map to, by function or layer name (nested: ``Nested/Name``)."""

    functions: dict[str, Path] = field(default_factory=dict)  # staged asset of each function
    sources: dict[str, Path] = field(default_factory=dict)  # the source folder it copied, if any
    unmapped_layers: dict[str, Path] = field(default_factory=dict)  # layer asset with no source
    bundled_layers: dict[Path, Path] = field(default_factory=dict)  # source python -> asset python


def _unmapped(what: str, project: Path, asset: Path, stale: bool) -> str:
    """Why an asset runs as it is. When the source changed after the synth, that is the
    likely cause (the asset no longer matches it), and synthesizing again is the fix."""
    shown = asset.relative_to(project) if asset.is_relative_to(project) else asset
    if stale:
        return (f"{what}: its code in {shown} matches no folder of {project}, most likely because the "
                f"source changed after the last synth: run `{SYNTH}` (until then plldb runs {shown}, "
                "and breakpoints set in the source do not bind)")
    return (f"{what}: no folder of {project} holds the code of asset {shown}; running the asset folder "
            f"itself: set breakpoints in {shown} (or run `{SYNTH} --no-staging` so the template names "
            "the source folder)")


def _read_stack(
    result: Discovery, project: Path, cdk_out: Path, template: Path, prefix: str, assets: _Assets
) -> None:
    """Add one synthesized template's functions, and those of its nested stacks (CDK writes
    each as ``<id>.nested.template.json``, named by the stack resource's asset path), named
    ``Nested/Function`` as :func:`plldb.project.stack_mapping.map_stack_functions` expects."""
    result.files_read.append(template)
    document = json.loads(template.read_text())
    _map_assets(project, cdk_out, document, prefix, assets)
    resources = document.get("Resources") or {}
    nested = {k: child for k, r in resources.items() if (child := _nested_template(cdk_out, r)) is not None}
    for logical_id in nested:
        del resources[logical_id]  # read below from cdk.out, not from its S3 TemplateURL
    discover_document(result, document, template, cdk_out / "no-build", prefix)
    for logical_id, child in nested.items():
        if child.is_file():
            _read_stack(result, project, cdk_out, child, f"{prefix}{logical_id}{NESTED_SEPARATOR}", assets)
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


def _map_assets(project: Path, cdk_out: Path, document: dict[str, Any], prefix: str, assets: _Assets) -> None:
    """Point each function's ``Code`` at its asset folder and each layer's ``Content`` at its
    source folder, else its asset (in place); record what each asset maps to in ``assets``."""
    for logical_id, resource in (document.get("Resources") or {}).items():
        kind = resource.get("Type") if isinstance(resource, dict) else None
        if kind not in (LAMBDA_FUNCTION, LAMBDA_LAYER):
            continue
        asset_path = (resource.get("Metadata") or {}).get(ASSET_PATH)
        properties = resource.get("Properties") or {}
        if not isinstance(asset_path, str) or not isinstance(properties, dict):
            continue
        folder = (cdk_out / asset_path).resolve()  # --no-staging: an absolute source path
        staged = folder.is_relative_to(cdk_out)
        if kind == LAMBDA_LAYER:
            properties["Content"] = str(_layer_folder(project, folder, f"{prefix}{logical_id}", assets)
                                        if staged else folder)
            continue
        properties["Code"] = str(folder)
        if staged:
            assets.functions[f"{prefix}{logical_id}"] = folder
            source = source_of(project, folder, properties.get("Handler"))
            if source is not None:
                assets.sources[f"{prefix}{logical_id}"] = source


def _layer_folder(project: Path, asset: Path, name: str, assets: _Assets) -> Path:
    """The source folder of a layer's staged asset (its bundled requirements kept behind it),
    else the asset itself, recorded as unmapped."""
    source = layer_source_of(project, asset)
    if source is None:
        assets.unmapped_layers[name] = asset
        return asset
    if bundled_extra(source / "python", asset / "python"):
        assets.bundled_layers[source / "python"] = asset / "python"
    return source
