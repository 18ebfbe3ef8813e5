"""Find the local code of a Serverless Framework service's Python functions.

``serverless package`` writes the stack's template to
``.serverless/cloudformation-template-update-stack.json``; its functions' code is a zip in
the deployment bucket, but handlers (``path/module.func``) are relative to the service
folder, or to the function's ``module:`` folder with serverless-python-requirements'
individually packaged layout. The stack is ``<service>-<stage>``: the stage is the one
asked for, else the one the stack name asked for carries, else ``provider.stage`` in
``serverless.yml``, else ``dev``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from plldb.project.function_code import LAMBDA_FUNCTION, unique
from plldb.project.model import Discovery, LocalFunction
from plldb.project.python_version import version_warnings
from plldb.project.sam import discover_document
from plldb.project.templates import DiscoveryError

SERVERLESS_YML = "serverless.yml"
PACKAGED = Path(".serverless") / "cloudformation-template-update-stack.json"
DEFAULT_STAGE = "dev"
REQUIREMENTS_PLUGIN = "serverless-python-requirements"
_VARIABLE = re.compile(r"\$\{.*\}")


def discover_serverless(
    service_dir: Path, python_version: tuple[int, int], stage: str | None, stack_name: str | None = None
) -> Discovery:
    """The functions of the service in ``service_dir``, packaged for ``stage``.

    The packaged template is the truth about which functions exist: functions that plugins
    add (serverless-lift's workers) are in it and not in ``serverless.yml``.
    """
    config_file = service_dir / SERVERLESS_YML
    config = _load_config(config_file)
    service = _plain(config.get("service"))
    if service is None:
        raise DiscoveryError(f"{config_file}: no plain `service:` name (plldb cannot resolve variables there)")
    provider = config.get("provider") if isinstance(config.get("provider"), dict) else {}
    from_stack = stack_name.removeprefix(f"{service}-") if stack_name and stack_name.startswith(f"{service}-") else None
    stage = stage or from_stack or _plain(provider.get("stage")) or DEFAULT_STAGE
    template = service_dir / PACKAGED
    if not template.is_file():
        raise DiscoveryError(
            f"Serverless service {service}: {template} not found: run `serverless package --stage "
            f"{stage}` in {service_dir} first (plldb reads the template it writes)"
        )
    document = json.loads(template.read_text())
    service_config = ServiceConfig(service_dir, service, stage, config)
    _check_stage(document, service_config, template)
    result = Discovery(template=template, functions={}, kind="Serverless Framework service",
                       stack_name=f"{service}-{stage}", files_read=[config_file, template])
    _point_layers(document, service_config)
    _point_code(document, service_config, result)
    discover_document(result, document, template, service_dir / ".serverless" / "no-build")
    result.functions = {k: with_requirements(f, service_config) for k, f in result.functions.items()}
    result.warnings += version_warnings(list(result.functions.values()), python_version)
    return result


@dataclass(frozen=True)
class ServiceConfig:
    """``serverless.yml`` as read, with the stage being read."""

    folder: Path
    service: str
    stage: str
    config: dict[str, Any]

    def section(self, name: str) -> dict[str, Any]:
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}

    @property
    def functions(self) -> dict[str, dict[str, Any]]:
        return {k: (v if isinstance(v, dict) else {}) for k, v in self.section("functions").items()}

    def uses_plugin(self, name: str) -> bool:
        plugins = self.config.get("plugins")
        listed = plugins.get("modules") if isinstance(plugins, dict) else plugins
        return isinstance(listed, list) and name in listed

    def key_of(self, logical: str, physical: Any) -> str | None:
        """The ``serverless.yml`` key of a template function: by the Framework's logical id,
        else (a function a plugin added) from its default name ``<service>-<stage>-<key>``."""
        for key in self.functions:
            if logical_id(key) == logical:
                return key
        prefix = f"{self.service}-{self.stage}-"
        return physical.removeprefix(prefix) if isinstance(physical, str) and physical.startswith(prefix) else None


def _load_config(config_file: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as error:
        raise DiscoveryError(f"{config_file} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise DiscoveryError(f"{config_file} is not a Serverless Framework service (not a mapping)")
    return config


def _plain(value: Any) -> str | None:
    """The value when it is a plain string; None for a ``${...}`` variable plldb cannot resolve."""
    return value if isinstance(value, str) and value and not _VARIABLE.search(value) else None


def logical_id(function_name: str) -> str:
    """The template's logical id of a serverless.yml function, as the Framework names it."""
    return _normalized(function_name) + "LambdaFunction"


def _normalized(name: str) -> str:
    """The Framework's normalization of a name in a logical id (``list-items`` -> ``ListDashitems``)."""
    return (name[:1].upper() + name[1:]).replace("-", "Dash").replace("_", "Underscore")


def _check_stage(document: dict[str, Any], config: ServiceConfig, template: Path) -> None:
    """Refuse a template packaged for another stage: its function names would not be the
    deployed stack's. The stage is in every artifact's S3 key (``<prefix>/<service>/<stage>/...``);
    a function with a custom ``name:`` says nothing about it."""
    for resource in _resources_of(document, LAMBDA_FUNCTION):
        code = (resource.get("Properties") or {}).get("Code")
        key = code.get("S3Key") if isinstance(code, dict) else None
        match = re.match(rf"[^/]+/{re.escape(config.service)}/([^/]+)/", key) if isinstance(key, str) else None
        if match and match[1] != config.stage:
            raise DiscoveryError(
                f"Serverless service {config.service}: {template} was packaged for stage {match[1]} "
                f"(S3 key {key}), not stage {config.stage}: run `serverless package --stage {config.stage}`"
            )


def _resources_of(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    resources = document.get("Resources") or {}
    return [r for r in resources.values() if isinstance(r, dict) and r.get("Type") == kind]


def _point_code(document: dict[str, Any], config: ServiceConfig, result: Discovery) -> None:
    """Point each function's ``Code`` at its folder here (in place) and record its
    ``serverless.yml`` key as a name users may type."""
    functions = config.functions
    for name, resource in (document.get("Resources") or {}).items():
        if not isinstance(resource, dict) or resource.get("Type") != LAMBDA_FUNCTION:
            continue
        properties = resource.get("Properties") or {}
        key = config.key_of(name, properties.get("FunctionName"))
        result.add_name(name, key)
        module = _plain(functions.get(key or "", {}).get("module"))
        properties["Code"] = str((config.folder / module).resolve() if module else config.folder.resolve())


def _point_layers(document: dict[str, Any], config: ServiceConfig) -> None:
    """Point each layer of ``serverless.yml`` (``layers: {name: {path: folder}}``, logical id
    ``<Name>LambdaLayer``) at its folder here, so functions search its ``python/`` folder."""
    resources = document.get("Resources") or {}
    for name, spec in config.section("layers").items():
        path = _plain(spec.get("path")) if isinstance(spec, dict) else None
        resource = resources.get(_normalized(name) + "LambdaLayer")
        if path and isinstance(resource, dict) and isinstance(resource.get("Properties"), dict):
            resource["Properties"]["Content"] = str((config.folder / path).resolve())


def with_requirements(function: LocalFunction, config: ServiceConfig) -> LocalFunction:
    """The function with what serverless-python-requirements installed for it behind its
    source (``.serverless/requirements``, or ``.serverless/<module>/requirements`` for a
    ``module:`` function), and the command that installs them."""
    module = function.code_dir.relative_to(config.folder.resolve()) if function.code_dir.is_relative_to(
        config.folder.resolve()) else Path()
    installed = config.folder / ".serverless" / module / "requirements"
    if not config.uses_plugin(REQUIREMENTS_PLUGIN):
        return function
    hint = (f"`serverless package --stage {config.stage}` (serverless-python-requirements installs "
            f"requirements.txt into {installed.relative_to(config.folder)})")
    if not installed.is_dir():
        return replace(function, build_hint=hint)
    return replace(function, import_path=unique((*function.import_path, installed)),
                   package_dirs=unique((*function.package_dirs, installed)), build_hint=hint)
