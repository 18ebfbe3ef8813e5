"""`plldb bootstrap`: deploy (setup, the default) or remove (destroy) the helper stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from plldb import console
from plldb.commands.common import pass_aws, progress

if TYPE_CHECKING:
    from plldb.cloud.aws import AwsContext


def _print_outputs(outputs: dict[str, str]) -> None:
    if outputs:
        console.table(
            "Helper stack outputs", ["Output", "Value"], sorted(map(list, outputs.items()))
        )


@click.group("bootstrap", invoke_without_command=True)
@click.pass_context
def bootstrap_group(ctx: click.Context) -> None:
    """Deploy (setup, the default) or remove (destroy) the helper stack `plldb`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(setup)


@bootstrap_group.command()
@pass_aws
def setup(aws: AwsContext) -> None:
    """Create or update the artifact bucket and the helper stack (idempotent)."""
    from plldb.cloud import bootstrap

    result = bootstrap.setup(aws, progress)
    _print_outputs(result.outputs)
    summary = "helper stack deployed" if result.stack_changed else "helper stack up to date"
    console.success(f"{summary} in {aws.region_name}")


@bootstrap_group.command()
@pass_aws
def destroy(aws: AwsContext) -> None:
    """Delete the helper stack and the artifact bucket (idempotent)."""
    from plldb.cloud import bootstrap

    bootstrap.destroy(aws, progress)
    console.success(f"helper stack and bucket removed from {aws.region_name}")
