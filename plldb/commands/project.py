"""Which project, which stack, which functions: the command line's reading of them.

Parsing helpers of :mod:`plldb.cli` (attach, detach): ``--stack-name`` or the stack the
project's tool deploys (samconfig.toml, the CDK app's manifest, the Serverless service and
stage), the project line attach prints, and the ``--function-name/--code/--handler``
entries of by-name mode. Usage mistakes are ``click.UsageError``; discovery is imported when
needed, to keep start-up light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from plldb import console
from plldb.commands.common import escape

if TYPE_CHECKING:
    from plldb.project import by_name
    from plldb.project.model import Discovery


def default_stack_name(stack_name: str | None) -> str:
    """--stack-name, else the stack name `sam deploy` would use (samconfig.toml here, even
    when the template cannot be read), else the one the CDK app or Serverless service here
    names (its only stack, its default stage)."""
    from plldb.project.model import DEFAULT_TEMPLATE
    from plldb.project.samconfig import stack_name_from_samconfig

    found = stack_name or stack_name_from_samconfig(Path.cwd())
    return found or project_stack(None, Path(DEFAULT_TEMPLATE), None, None)[0]


def samconfig_stack_name() -> str:
    from plldb.project.samconfig import stack_name_from_samconfig

    found = stack_name_from_samconfig(Path.cwd())
    if not found:
        raise click.UsageError("--stack-name is required (no samconfig.toml with a stack_name here)")
    return found


def project_stack(
    stack_name: str | None, template: Path, stage: str | None, cdk_out: Path | None
) -> tuple[str, Discovery | None]:
    """--stack-name, else the stack the project's tool deploys (samconfig.toml, the CDK app's
    manifest, the Serverless service and stage); the project read for it is passed on."""
    if stack_name:
        return stack_name, None
    from plldb.project import discovery

    if cdk_out is None and not discovery.project_found(template):
        return samconfig_stack_name(), None  # attach then says the template is missing
    project = discovery.discover(template, stage=stage, cdk_out=cdk_out)
    if not project.stack_name:
        raise click.UsageError(
            f"--stack-name is required ({project.kind} {template}: no samconfig.toml with a stack_name)"
        )
    return project.stack_name, project


def print_project(project: Discovery, stack_name: str) -> None:
    """Which kind of project plldb found and which files it read: a wrong folder shows here."""
    here = Path.cwd()
    read = ", ".join(str(f.relative_to(here) if f.is_relative_to(here) else f) for f in project.files_read)
    console.info(escape(f"{project.kind} (read {read}): stack {stack_name}"))


def named_functions(
    stack_name: str | None, functions: tuple[str, ...], names: tuple[str, ...],
    codes: tuple[Path, ...], handlers: tuple[str, ...],
) -> list[by_name.NamedCode]:
    """The --function-name/--code/--handler entries; none when attaching to a stack."""
    from plldb.project import by_name

    if not names:
        if codes or handlers:
            raise click.UsageError("--code and --handler go with --function-name")
        return []
    if stack_name or functions:
        raise click.UsageError("--function-name attaches functions without a stack: drop "
                               "--stack-name and --function (or attach the stack instead)")
    try:
        return by_name.pair_options(names, codes, handlers)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
