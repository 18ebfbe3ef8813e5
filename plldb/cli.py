"""The `plldb` command line: the root group, error handling, and the command registry.

The commands themselves are in :mod:`plldb.commands` (one module per group of commands; each
parses and prints, and the work happens in the packages below). To add a command, write it
there with ``@click.command()``, take the :class:`~plldb.cloud.aws.AwsContext` with
:func:`~plldb.commands.common.pass_aws`, and add it to the registry at the end. Errors a user can cause are exceptions
listed by :func:`user_errors`: :class:`PlldbGroup` prints them as one line and exits 1, for
every command, so commands never catch them themselves.

Start-up is part of the interface: ``plldb --help`` must answer at once, so this module
imports only click at load time; boto3, rich, websockets and debugpy are imported by the
commands that use them.
"""

from __future__ import annotations

import logging
import sys

import click

from plldb import __version__, console
from plldb.commands import admin as admin_commands
from plldb.commands import attach as attach_commands
from plldb.commands import bootstrap as bootstrap_commands
from plldb.commands import capture as capture_commands
from plldb.commands import functions as functions_commands
from plldb.commands.common import escape

log = logging.getLogger(__name__)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose text is a complete, actionable one-line message for the user.

    Imported here, on the error path, to keep start-up light; modules that add commands add
    their own error types.
    """
    from plldb.capture import invoke, records
    from plldb.cloud import bootstrap
    from plldb.cloud.aws import AwsAccessError
    from plldb.cloud.helper_stack import HelperStackMissing, HelperStackOutdated
    from plldb.local import debuggers
    from plldb.project.templates import DiscoveryError
    from plldb.session import admin, claims, plan
    from plldb.session.connect_url import ConnectUrlTooLong
    from plldb.session.connection import ConnectionRefused
    from plldb.session.sessions import SessionConflict, SessionLost

    return (
        AwsAccessError,
        bootstrap.BootstrapError,
        HelperStackMissing,
        HelperStackOutdated,
        DiscoveryError,
        plan.StackNotFound,
        plan.NothingToDebug,
        SessionConflict,
        SessionLost,
        ConnectionRefused,
        ConnectUrlTooLong,
        claims.ClaimRefused,
        debuggers.DebuggerError,
        admin.DetachError,
        invoke.InvokeError,
        records.CaptureError,
    )


def _describe_unexpected(exc: BaseException) -> str:
    """One line for an error nobody anticipated (the traceback goes to --verbose logs)."""
    import botocore.exceptions

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
        except KeyboardInterrupt:
            console.error("interrupted")
            raise click.exceptions.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence for the user
            log.debug("command failed", exc_info=True)
            known = isinstance(exc, user_errors())
            console.error(escape(str(exc) if known else _describe_unexpected(exc)))
        raise click.exceptions.Exit(1)


@click.group(cls=PlldbGroup)
@click.version_option(__version__, prog_name="plldb")
@click.option("--profile", help="AWS profile (default: the usual chain).")
@click.option("--region", help="AWS region (default: AWS_DEFAULT_REGION or the profile's region).")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (to stderr).")
@click.pass_context
def cli(ctx: click.Context, profile: str | None, region: str | None, verbose: bool) -> None:
    """PLLDB: debug the Python Lambda functions of a deployed stack on your machine."""
    console.setup_logging(verbose)
    ctx.obj = {"profile": profile, "region": region}


def main() -> None:
    """Console-script entry point (`plldb`)."""
    sys.exit(cli.main(prog_name="plldb"))


for _command in (bootstrap_commands.bootstrap_group, attach_commands.attach_command,
                 admin_commands.detach_command, admin_commands.status_command,
                 *capture_commands.COMMANDS, *functions_commands.COMMANDS):
    cli.add_command(_command)


if __name__ == "__main__":
    main()
