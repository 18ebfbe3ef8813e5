"""What the SAM CLI wrote down for a project: samconfig (stack name, parameter overrides)
and ``.aws-sam/build.toml`` (where each built function's source came from)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from plldb.project.templates import DiscoveryError, first_line

SAMCONFIG_NAMES = ("samconfig.toml", "samconfig.yaml", "samconfig.yml")


def stack_name_from_samconfig(directory: Path | str = ".", environment: str = "default") -> str | None:
    """The ``stack_name`` that ``sam deploy`` would use, or None when there is none."""
    value = _deploy_parameter(Path(directory), environment, "stack_name")
    return value if isinstance(value, str) and value else None


def config_files(directory: Path) -> list[Path]:
    """The samconfig files of ``directory`` (what discovery reports having read)."""
    return [directory / name for name in SAMCONFIG_NAMES if (directory / name).is_file()]


def parameter_overrides(directory: Path | str = ".", environment: str = "default") -> dict[str, str]:
    """The ``parameter_overrides`` that ``sam deploy`` would pass, by parameter name.

    samconfig writes them as one string (``"A=1 B='x y'"``, shell quoting) or as a list of
    ``"A=1"`` strings; both are read.
    """
    value = _deploy_parameter(Path(directory), environment, "parameter_overrides")
    if isinstance(value, str):
        pairs = shlex.split(value)
    elif isinstance(value, list):
        pairs = [str(item) for item in value]
    else:
        return {}
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def _deploy_parameter(directory: Path, environment: str, key: str) -> Any:
    """``key`` from ``<env>.deploy.parameters``, else ``<env>.global.parameters``."""
    for name in SAMCONFIG_NAMES:
        path = directory / name
        if not path.is_file():
            continue
        data = read_config(path)
        for command in ("deploy", "global"):
            section = ((data.get(environment) or {}).get(command) or {}).get("parameters") or {}
            if section.get(key) is not None:
                return section[key]
    return None


def read_config(path: Path) -> dict[str, Any]:
    """A TOML or YAML config file as a dict; a broken one is a :class:`DiscoveryError`."""
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else _parse_toml(text)
    except (yaml.YAMLError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise DiscoveryError(f"{path} cannot be parsed: {first_line(exc)}") from exc
    return data if isinstance(data, dict) else {}


def build_sources(project_dir: Path) -> dict[str, Path]:
    """Source folder of each function and layer built by ``sam build``, by logical id.

    ``.aws-sam/build.toml`` records, per build definition, the source ``codeuri`` and the
    ``functions`` (nested ones as ``App/Fn``) or ``layer`` built from it. That is the only
    record of which template was built (``sam build -t other.yaml``); relative paths are
    taken from the project folder.
    """
    path = project_dir / ".aws-sam" / "build.toml"
    if not path.is_file():
        return {}
    data = read_config(path)
    sources: dict[str, Path] = {}
    for section, names_key in (("function_build_definitions", "functions"), ("layer_build_definitions", "layer")):
        for definition in (data.get(section) or {}).values():
            codeuri = definition.get("codeuri") if isinstance(definition, dict) else None
            if not isinstance(codeuri, str):
                continue
            names = definition.get(names_key)
            for name in names if isinstance(names, list) else [names]:
                if isinstance(name, str):
                    sources[name] = (project_dir / codeuri).resolve()
    return sources


def _parse_toml(text: str) -> dict[str, Any]:
    """TOML with the standard library's reader (3.11+), else its backport ``tomli`` (a
    dependency on Python 3.10): samconfig files use all of TOML (multi-line arrays, inline
    tables), not a subset a hand-written reader could follow."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10
        import tomli as tomllib

    return tomllib.loads(text)
