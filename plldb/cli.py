"""The `plldb` command line: parses arguments and prints; the work happens in modules.

To add a command, decorate a function with ``@cli.command()`` (or a group's) and take the
:class:`~plldb.aws.AwsContext` with ``@click.pass_obj``. Errors a user can cause are
exceptions listed in :data:`USER_ERRORS`: :class:`PlldbGroup` prints them as one line and
exits 1, for every command, so commands never catch them themselves.
"""

from __future__ import annotations

import logging
import sys

import botocore.exceptions
import click
from rich.markup import escape

from plldb import __version__, bootstrap, console
from plldb.aws import AwsAccessError, AwsContext
from plldb.helper_stack import HelperStackMissing, HelperStackOutdated

log = logging.getLogger(__name__)

# Exceptions whose text is a complete, actionable one-line message for the user.
# Modules that add commands add their own error types here.
USER_ERRORS: tuple[type[BaseException], ...] = (
    AwsAccessError,
    bootstrap.BootstrapError,
    HelperStackMissing,
    HelperStackOutdated,
)


def _describe_unexpected(exc: BaseException) -> str:
    """One line for an error nobody anticipated (the traceback goes to --verbose logs)."""
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return "No AWS credentials found: run `aws configure`, `aws sso login`, or pass --profile"
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return f"Cannot reach AWS ({exc}): check --region and your network"
    text = " ".join(str(exc).split())[:300]
    return f"unexpected {type(exc).__name__}: {text} (run with --verbose for details)"


class PlldbGroup(click.Group):
    """Root group: turns known errors into one line + exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except USER_ERRORS as exc:
            log.debug("command failed", exc_info=True)
            console.error(escape(str(exc)))
        except KeyboardInterrupt:
            console.error("interrupted")
            raise click.exceptions.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence for the user
            log.debug("command failed", exc_info=True)
            console.error(escape(_describe_unexpected(exc)))
        raise click.exceptions.Exit(1)


@click.group(cls=PlldbGroup)
@click.version_option(__version__, prog_name="plldb")
@click.option("--profile", help="AWS profile (default: the usual chain).")
@click.option("--region", help="AWS region (default: AWS_REGION or the profile's region).")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
@click.pass_context
def cli(ctx: click.Context, profile: str | None, region: str | None, verbose: bool) -> None:
    """PLLDB: debug the Python Lambda functions of a deployed stack on your machine."""
    console.setup_logging(verbose)
    ctx.obj = AwsContext(profile=profile, region=region)


def _progress(message: str) -> None:
    console.info(escape(message))


def _print_outputs(outputs: dict[str, str]) -> None:
    if outputs:
        console.table(
            "Helper stack outputs", ["Output", "Value"], sorted(map(list, outputs.items()))
        )


@cli.group(invoke_without_command=True)
@click.pass_context
def bootstrap_group(ctx: click.Context) -> None:
    """Deploy (setup, the default) or remove (destroy) the helper stack `plldb`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(setup)


cli.add_command(bootstrap_group, name="bootstrap")


@bootstrap_group.command()
@click.pass_obj
def setup(aws: AwsContext) -> None:
    """Create or update the artifact bucket and the helper stack (idempotent)."""
    result = bootstrap.setup(aws, _progress)
    _print_outputs(result.outputs)
    summary = "helper stack deployed" if result.stack_changed else "helper stack up to date"
    console.success(f"{summary} in {aws.region_name}")


@bootstrap_group.command()
@click.pass_obj
def destroy(aws: AwsContext) -> None:
    """Delete the helper stack and the artifact bucket (idempotent)."""
    bootstrap.destroy(aws, _progress)
    console.success(f"helper stack and bucket removed from {aws.region_name}")


def main() -> None:
    """Console-script entry point (`plldb`)."""
    sys.exit(cli.main(prog_name="plldb"))


if __name__ == "__main__":
    main()
