"""What reading a project gives: where each function's code lives here, and what was left out.

Every reader (:mod:`plldb.project.sam`, :mod:`plldb.project.cdk`,
:mod:`plldb.project.serverless`, :mod:`plldb.project.by_name`) builds these records; the
dispatcher :mod:`plldb.project.discovery` picks the reader. Readers depend on this module,
never on the dispatcher.
"""

from __future__ import annotations

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
    layers: tuple[LayerMapping, ...] = ()  # every layer of the function and where it maps here
    build_hint: str | None = None  # the build command that installs its dependencies


@dataclass(frozen=True)
class LayerMapping:
    """One layer of a function, as ``plldb functions`` shows it: its name in the template (or
    ARN) and the folder it runs from here (None: not on this machine, ``note`` says why)."""

    name: str
    folder: Path | None
    note: str = ""


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
    # Other names a user may type for a function (physical name, serverless.yml key, CDK
    # construct path and id), by logical id; skipped functions included.
    names: dict[str, list[str]] = field(default_factory=dict)

    def add_name(self, logical_id: str, name: str | None) -> None:
        """Record ``name`` as another name of ``logical_id`` (once; the logical id itself is implied)."""
        if name and name != logical_id and name not in self.names.setdefault(logical_id, []):
            self.names[logical_id].append(name)
