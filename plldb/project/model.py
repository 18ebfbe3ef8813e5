"""What reading a project gives: where each function's code lives here, and what was left out.

Every reader (:mod:`plldb.project.sam`, :mod:`plldb.project.cdk`,
:mod:`plldb.project.serverless`, :mod:`plldb.project.by_name`) builds these records; the
dispatcher :mod:`plldb.project.discovery` picks the reader. Readers depend on this module,
never on the dispatcher.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
