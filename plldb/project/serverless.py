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
from pathlib import Path
from typing import Any

import yaml

from plldb.project.function_code import LAMBDA_FUNCTION
from plldb.project.model import Discovery
from plldb.project.python_version import version_warnings
from plldb.project.sam import discover_document
from plldb.project.templates import DiscoveryError

SERVERLESS_YML = "serverless.yml"
PACKAGED = Path(".serverless") / "cloudformation-template-update-stack.json"
DEFAULT_STAGE = "dev"
_VARIABLE = re.compile(r"\$\{.*\}")


def discover_serverless(
    service_dir: Path, python_version: tuple[int, int], stage: str | None, stack_name: str | None = None
) -> Discovery:
    """The functions of the service in ``service_dir``, packaged for ``stage``."""
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
    functions = config.get("functions") if isinstance(config.get("functions"), dict) else {}
    skipped = _point_code(document, service_dir, service, stage, functions, template)
    result = Discovery(template=template, functions={}, kind="Serverless Framework service",
                       stack_name=f"{service}-{stage}", files_read=[config_file, template])
    discover_document(result, document, template, service_dir / ".serverless" / "no-build")
    result.skipped.update(skipped)
    result.warnings += version_warnings(list(result.functions.values()), python_version)
    return result


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
    normalized = function_name[:1].upper() + function_name[1:]
    return normalized.replace("-", "Dash").replace("_", "Underscore") + "LambdaFunction"


def _point_code(
    document: dict[str, Any], service_dir: Path, service: str, stage: str,
    functions: dict[str, Any], template: Path,
) -> dict[str, str]:
    """Point each function's ``Code`` at its folder here (in place); returns what to skip.

    A template packaged for another stage is refused: its function names would not be the
    deployed stack's.
    """
    by_id = {logical_id(name): (spec if isinstance(spec, dict) else {}) for name, spec in functions.items()}
    skipped: dict[str, str] = {}
    resources = document.get("Resources") or {}
    for name, resource in list(resources.items()):
        if not isinstance(resource, dict) or resource.get("Type") != LAMBDA_FUNCTION:
            continue
        properties = resource.get("Properties") or {}
        deployed = properties.get("FunctionName")
        if isinstance(deployed, str) and not deployed.startswith(f"{service}-{stage}-"):
            raise DiscoveryError(
                f"Serverless service {service}: {template} was packaged for another stage (function "
                f"{deployed}), not stage {stage}: run `serverless package --stage {stage}`"
            )
        if name not in by_id:
            skipped[name] = f"not a function of {SERVERLESS_YML} (known: {', '.join(sorted(by_id)) or 'none'})"
            del resources[name]
            continue
        module = _plain(by_id[name].get("module"))
        properties["Code"] = str((service_dir / module).resolve() if module else service_dir.resolve())
    return skipped
