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
    except (yaml.YAMLError, ValueError) as exc:
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
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    return parse_simple_toml(text)


def parse_simple_toml(text: str) -> dict[str, Any]:
    """Enough TOML for samconfig and build.toml on Python 3.10 (no tomllib): tables, string
    and boolean keys, one-line arrays of strings."""
    data: dict[str, Any] = {}
    table = data
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            table = data
            for part in _table_name(line).split("."):
                table = table.setdefault(part.strip().strip('"'), {})
            continue
        key, separator, value = line.partition("=")
        if not separator:
            raise ValueError(f"expected key = value: {line}")
        table[key.strip().strip('"')] = _toml_value(value.strip())
    return data


def _table_name(line: str) -> str:
    if not line.endswith("]") and "]" not in line:
        raise ValueError(f"unterminated table header: {line}")
    return line[1 : line.index("]")]


def _toml_value(text: str) -> Any:
    """A TOML string, boolean, number, or one-line array of those (comments dropped)."""
    tokens = shlex.shlex(text, posix=True, punctuation_chars="[],")
    tokens.commenters = "#"
    tokens.escapedquotes = '"'
    parts = list(tokens)
    if text.startswith("["):
        return [part for part in parts if part.strip("[],")]
    value = " ".join(parts)
    if text.startswith(('"', "'")):
        return value
    return {"true": True, "false": False}.get(value, _number_or_text(value))


def _number_or_text(value: str) -> Any:
    try:
        return float(value) if "." in value else int(value)
    except ValueError:
        return value
