"""A function's ``PYTHONPATH`` variable, mapped from Lambda's folders to this machine's.

Lambda puts the entries of a ``PYTHONPATH`` set in the function's environment on
``sys.path``: ``/var/task/vendored`` is the ``vendored`` folder of the function's code,
``/opt/python/lib`` a folder of its layers. plldb hides the variable itself from the handler
(the Lambda paths mean nothing here) and instead searches the matching local folders, right
after the code folder. ``/var/runtime`` and ``/var/lang`` are the runtime's own (plldb's
interpreter stands in for them); any other entry cannot be mapped and is named in a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

TASK_ROOT = PurePosixPath("/var/task")
LAYER_ROOT = PurePosixPath("/opt")
LAYER_PYTHON = LAYER_ROOT / "python"
RUNTIME_FOLDERS = (PurePosixPath("/var/runtime"), PurePosixPath("/var/lang"))


@dataclass
class MappedPath:
    """The local folders of a ``PYTHONPATH``, and the entries that have none."""

    folders: list[Path] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)


def map_pythonpath(value: object, code_dir: Path, layer_dirs: Sequence[Path]) -> MappedPath:
    """The existing local folders for each entry of ``value`` (``PYTHONPATH`` as the template
    sets it); ``layer_dirs`` are the function's local layers' ``python`` folders (``/opt/python``)."""
    mapped = MappedPath()
    if not isinstance(value, str):
        return mapped
    for entry in filter(None, value.split(":")):
        path = PurePosixPath(entry)
        if any(path == root or root in path.parents for root in RUNTIME_FOLDERS):
            continue
        candidates = _candidates(path, code_dir, layer_dirs)
        found = [folder for folder in candidates if folder.is_dir()]
        if found:
            mapped.folders += [f for f in found if f not in mapped.folders]
        else:
            mapped.unmapped.append(entry)
    return mapped


def _candidates(path: PurePosixPath, code_dir: Path, layer_dirs: Sequence[Path]) -> list[Path]:
    if not path.is_absolute():  # Lambda's working directory is the task root
        return [code_dir / path]
    if path == TASK_ROOT or TASK_ROOT in path.parents:
        return [code_dir / path.relative_to(TASK_ROOT)]
    if path == LAYER_PYTHON or LAYER_PYTHON in path.parents:  # each layer's python folder
        return [layer / path.relative_to(LAYER_PYTHON) for layer in layer_dirs]
    if LAYER_ROOT in path.parents:  # elsewhere in a layer: beside its python folder
        rest = path.relative_to(LAYER_ROOT)
        return [layer.parent / rest for layer in layer_dirs if layer.name == "python"]
    return []
