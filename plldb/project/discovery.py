"""Which kind of project is here, and its reader: the one entry point to discovery.

:func:`discover` looks at the path it is given (a template, a folder, a template inside
``cdk.out``) and hands it to the reader of that kind: :mod:`plldb.project.sam`,
:mod:`plldb.project.cdk` or :mod:`plldb.project.serverless`. Each returns a
:class:`~plldb.project.model.Discovery`; :mod:`plldb.project.stack_mapping` joins it with
the deployed stack's resources, keyed by physical function name, which is what an
invocation carries.
"""

from __future__ import annotations

import sys
from pathlib import Path

from plldb.project import cdk, serverless
from plldb.project.model import DEFAULT_TEMPLATE, Discovery
from plldb.project.sam import discover_sam


def discover(
    template: Path | str = DEFAULT_TEMPLATE,
    python_version: tuple[int, int] = sys.version_info[:2],
    stack_name: str | None = None,
    stage: str | None = None,
    cdk_out: Path | str | None = None,
) -> Discovery:
    """Read ``template`` (source or ``.aws-sam/build/template.yaml``) into local functions.

    Parameters take their samconfig ``parameter_overrides``, else their defaults. A built
    template's functions run from the source folders ``.aws-sam/build.toml`` records (so
    breakpoints set in the source hit); where it records none, from the build copies, with
    a warning. A CDK app (``cdk.json``, or a template inside ``cdk.out``) and a Serverless
    Framework service (``serverless.yml``) are read from what their tool synthesized
    (:mod:`plldb.project.cdk`, :mod:`plldb.project.serverless`); ``stack_name`` picks the
    CDK stack and, as ``<service>-<stage>``, the Serverless stage unless ``stage`` is given;
    ``cdk_out`` names the synthesized folder of a CDK app (``cdk synth --output``) and makes
    the project one. ``Discovery.stack_name`` is the stack the project's tool deploys (for a
    SAM project, samconfig's ``stack_name``).
    """
    given = Path(template)
    path = given.resolve()
    other = _other_project_kind(path, python_version, stack_name, stage, cdk_out)
    if other is not None:
        return other
    return discover_sam(given, python_version)


def project_found(template: Path | str) -> bool:
    """Whether ``template`` names something :func:`discover` reads: an existing template, or
    (a template that need not exist in) a CDK app or a Serverless service folder."""
    path = Path(template).resolve()
    folder = path if path.is_dir() else path.parent
    return path.is_file() or cdk.in_cdk_out(path) or any(
        (folder / name).is_file() for name in (cdk.CDK_JSON, serverless.SERVERLESS_YML))


def _other_project_kind(
    path: Path, python_version: tuple[int, int], stack_name: str | None, stage: str | None,
    cdk_out: Path | str | None,
) -> Discovery | None:
    """A CDK app's or Serverless service's discovery when ``path`` (a template that need not
    exist, or a folder) belongs to one, or ``cdk_out`` is given; None for a SAM/CloudFormation
    template."""
    if cdk_out is not None:
        return cdk.discover_cdk(path, python_version, stack_name, Path(cdk_out))
    if path.is_file() and not cdk.in_cdk_out(path):
        return None
    folder = path if path.is_dir() else path.parent
    if cdk.in_cdk_out(path) or (folder / cdk.CDK_JSON).is_file():
        return cdk.discover_cdk(path, python_version, stack_name)
    if (folder / serverless.SERVERLESS_YML).is_file():
        return serverless.discover_serverless(folder, python_version, stage, stack_name)
    return None
