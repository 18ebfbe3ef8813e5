"""Which project folder a CDK asset (``cdk.out/asset.<hash>``) copied, and whether ``cdk.out``
is older than the source.

Breakpoints must bind in the files the developer edits, so a function's or layer's staged
asset is mapped back to its source folder by content: every file of the source is in the
asset unchanged (a bundled asset, ``PythonFunction`` or ``PythonLayerVersion``, also holds
installed requirements, which stay on the import path behind the source). Content matching
needs only what ``cdk synth`` wrote, and cannot pick a folder that is not the code that was
synthesized.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from plldb.project.function_code import handler_module_candidates, unique
from plldb.project.model import LocalFunction

CDK_OUT = "cdk.out"
SYNTH = "cdk synth"
_NOT_SOURCE = {CDK_OUT, "node_modules", "__pycache__", "venv", "env", "site-packages"}


def source_of(project: Path, asset: Path, handler: Any) -> Path | None:
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


def layer_source_of(project: Path, asset: Path) -> Path | None:
    """The project folder a layer's asset copied: it has a ``python`` folder with files, and
    every one of its files is in the asset unchanged (``Code.from_asset("layer")``)."""
    if not (asset / "python").is_dir():
        return None
    for folder in _source_folders(project):
        if folder != project and (folder / "python").is_dir() and _has_files(folder / "python") \
                and _all_copied(folder, asset):
            return folder
    return None


def bundled_extra(source: Path, asset: Path) -> bool:
    """Whether the asset holds more than its source at its top level (installed requirements)."""
    return any(p.is_dir() and not (source / p.name).exists() for p in asset.iterdir())


def _has_files(folder: Path) -> bool:
    return next(_source_files(folder), None) is not None


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


def run_from_source(function: LocalFunction, source: Path, asset: Path) -> LocalFunction:
    """Source first; the asset stays behind it for the requirements bundling installed."""
    extra = asset if bundled_extra(source, asset) else None
    package_dirs = unique((*function.package_dirs, extra)) if extra else function.package_dirs
    import_path = unique((source, *function.import_path[1:], *([extra] if extra else [])))
    hint = f"`{SYNTH}` (a PythonFunction bundles requirements.txt into its asset)" \
        if (source / "requirements.txt").is_file() else None
    return replace(function, code_dir=source, import_path=import_path, package_dirs=package_dirs, build_hint=hint)


def with_bundled_layers(function: LocalFunction, bundled: dict[Path, Path]) -> LocalFunction:
    """A function whose layers map to source folders, with each layer's bundled asset
    ``python`` folder (``bundled``: source python folder -> asset python folder) behind it."""
    extra = [bundled[m.folder] for m in function.layers if m.folder in bundled]
    if not extra:
        return function
    return replace(function, import_path=unique((*function.import_path, *extra)),
                   package_dirs=unique((*function.package_dirs, *extra)))


def stale_files(project: Path, manifest: Path) -> list[Path]:
    """The source files changed after the last synth (newer than the manifest)."""
    synthesized = manifest.stat().st_mtime
    return [f for f in _source_files(project) if f.stat().st_mtime > synthesized]


def stale_warning(project: Path, manifest: Path, newer: list[Path]) -> str:
    shown = ", ".join(str(f.relative_to(project)) for f in newer[:3]) + (" ..." if len(newer) > 3 else "")
    return (
        f"{manifest.parent} is older than the source ({shown} changed after the last synth): "
        f"plldb may map functions to outdated templates and run the copies in {CDK_OUT}; run `{SYNTH}`"
    )
