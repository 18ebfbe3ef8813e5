"""The `plldb` command line: parses arguments and prints; the work happens in modules.

To add a command, decorate a function with ``@cli.command()`` (or a group's) and take the
:class:`~plldb.aws.AwsContext` with ``@pass_aws``. Errors a user can cause are exceptions
listed by :func:`user_errors`: :class:`PlldbGroup` prints them as one line and exits 1, for
every command, so commands never catch them themselves.

Start-up is part of the interface: ``plldb --help`` must answer at once, so this module
imports only click at load time; boto3, rich, websockets and debugpy are imported by the
commands that use them.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from plldb import __version__, console
from plldb.cli_capture import PROJECT_OPTIONS, escape
from plldb.cli_project import (
    default_stack_name,
    named_functions,
    print_project,
    project_stack,
)

if TYPE_CHECKING:
    from plldb import debuggers
    from plldb.aws import AwsContext

log = logging.getLogger(__name__)


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose text is a complete, actionable one-line message for the user.

    Imported here, on the error path, to keep start-up light; modules that add commands add
    their own error types.
    """
    from plldb import admin, attach, bootstrap, capture, claims, debuggers, discovery, invoke
    from plldb.aws import AwsAccessError
    from plldb.connection import ConnectionRefused
    from plldb.helper_stack import HelperStackMissing, HelperStackOutdated
    from plldb.sessions import SessionConflict, SessionLost

    return (
        AwsAccessError,
        bootstrap.BootstrapError,
        HelperStackMissing,
        HelperStackOutdated,
        discovery.DiscoveryError,
        attach.StackNotFound,
        attach.NothingToDebug,
        SessionConflict,
        SessionLost,
        ConnectionRefused,
        claims.ClaimRefused,
        debuggers.DebuggerError,
        admin.DetachError,
        invoke.InvokeError,
        capture.CaptureError,
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


def pass_aws(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give the command the AwsContext of --profile/--region, built when it runs (not for
    --help); a --region no partition knows is flagged first, before any wait for AWS."""

    @functools.wraps(command)
    def with_aws(*args: Any, **kwargs: Any) -> Any:
        from plldb.aws import AwsContext

        settings = click.get_current_context().find_root().obj
        if settings["region"]:
            _warn_unknown_region(settings["region"])
        return command(AwsContext(**settings), *args, **kwargs)

    return with_aws


def _warn_unknown_region(region: str) -> None:
    """A typo in --region otherwise shows only as "Cannot reach AWS" after the timeouts."""
    problem = unknown_region(region)
    if problem:
        console.warn(escape(problem))


def unknown_region(region: str) -> str | None:
    """Why ``region`` looks wrong (no partition botocore knows lists it), or None.

    A warning, not an error: a region newer than the installed botocore still works.
    """
    import difflib

    import botocore.session

    session = botocore.session.get_session()
    known = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("sts", partition_name=partition)
    }
    if region in known:
        return None
    close = difflib.get_close_matches(region, sorted(known), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return (f"region {region!r} is not an AWS region this plldb knows: {hint}"
            "check --region (or upgrade botocore for a brand-new region)")


def _progress(message: str) -> None:
    console.info(escape(message))


def _print_outputs(outputs: dict[str, str]) -> None:
    if outputs:
        console.table(
            "Helper stack outputs", ["Output", "Value"], sorted(map(list, outputs.items()))
        )


@cli.group("bootstrap", invoke_without_command=True)
@click.pass_context
def bootstrap_group(ctx: click.Context) -> None:
    """Deploy (setup, the default) or remove (destroy) the helper stack `plldb`."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(setup)



@bootstrap_group.command()
@pass_aws
def setup(aws: AwsContext) -> None:
    """Create or update the artifact bucket and the helper stack (idempotent)."""
    from plldb import bootstrap

    result = bootstrap.setup(aws, _progress)
    _print_outputs(result.outputs)
    summary = "helper stack deployed" if result.stack_changed else "helper stack up to date"
    console.success(f"{summary} in {aws.region_name}")


@bootstrap_group.command()
@pass_aws
def destroy(aws: AwsContext) -> None:
    """Delete the helper stack and the artifact bucket (idempotent)."""
    from plldb import bootstrap

    bootstrap.destroy(aws, _progress)
    console.success(f"helper stack and bucket removed from {aws.region_name}")


@cli.command("attach")
@click.option("--stack-name", help="Stack to debug (default: the one samconfig.toml, the CDK app "
              "or the Serverless service names).")
@click.option(
    "--template",
    type=click.Path(path_type=Path),
    default=Path("template.yaml"),
    show_default=True,
    help="SAM/CFN template of the stack (also .aws-sam/build/template.yaml); in a CDK app or "
    "Serverless service folder, the folder is read.",
)
@PROJECT_OPTIONS[0]
@PROJECT_OPTIONS[1]
@click.option("--function", "functions", multiple=True, metavar="NAME",
              help="Only these functions (logical id, physical name or glob); repeatable.")
@click.option("--function-name", "function_names", multiple=True, metavar="NAME",
              help="A function deployed without a stack (Terraform, Pulumi, console); repeatable.")
@click.option("--code", "codes", multiple=True, type=click.Path(path_type=Path), metavar="DIR",
              help="With --function-name: the folder its code runs from (once, or once per name).")
@click.option("--handler", "handlers", multiple=True, metavar="MODULE.FUNCTION",
              help="With --function-name: the handler (default: the deployed one).")
@click.option("--timeout", type=click.IntRange(1, 900), metavar="SECONDS",
              help="Timeout the functions get while attached (default 900).")
@click.option("--debugpy", "use_debugpy", is_flag=True,
              help="Start debugpy for VS Code \"Python Debugger: Remote Attach\".")
@click.option("--debugpy-host", default="127.0.0.1", show_default=True)
@click.option("--debugpy-port", type=click.IntRange(1, 65535), default=5678, show_default=True)
@click.option("--wait-for-client", is_flag=True,
              help="Hold invocations until a debugger has attached (with --debugpy).")
@click.option("--pycharm-port", type=click.IntRange(1, 65535),
              help="Connect to PyCharm's \"Python Debug Server\" on this port (needs pydevd-pycharm).")
@click.option("--force", is_flag=True, help="Take over a stack attached by someone else.")
@click.option(
    "--credentials",
    type=click.Choice(["function", "local"]),
    default="function",
    show_default=True,
    help="Run handlers with the function's own role (from the cloud) or your local profile.",
)
@pass_aws
def attach_command(
    aws: AwsContext,
    stack_name: str | None,
    template: Path,
    cdk_out: Path | None,
    stage: str | None,
    functions: tuple[str, ...],
    function_names: tuple[str, ...],
    codes: tuple[Path, ...],
    handlers: tuple[str, ...],
    timeout: int | None,
    use_debugpy: bool,
    debugpy_host: str,
    debugpy_port: int,
    wait_for_client: bool,
    pycharm_port: int | None,
    force: bool,
    credentials: str,
) -> None:
    """Run the stack's Python functions here, under your debugger, until Ctrl-C."""
    import asyncio

    from plldb import attach, debuggers, protocol
    from plldb.helper_stack import HelperStackMissing, HelperStackOutdated

    if (wait_for_client or debugpy_host != "127.0.0.1" or debugpy_port != 5678) and not use_debugpy:
        raise click.UsageError("--wait-for-client, --debugpy-host and --debugpy-port need --debugpy")
    named = named_functions(stack_name, functions, function_names, codes, handlers)
    stack, project = (protocol.by_name_key([n.name for n in named]), None) if named else \
        project_stack(stack_name, template, stage, cdk_out)
    options = attach.AttachOptions(
        stack_name=stack,
        named=tuple(named),
        template=template,
        stage=stage,
        cdk_out=cdk_out,
        functions=functions,
        timeout=timeout,
        debugpy=debuggers.DebugpyOptions(debugpy_host, debugpy_port, wait_for_client)
        if use_debugpy else None,
        pycharm=("localhost", pycharm_port) if pycharm_port else None,
        force=force,
        credentials=credentials,
    )
    try:
        plan = attach.plan_attach(aws, options, project)
    except (HelperStackMissing, HelperStackOutdated) as exc:
        if not _offer_bootstrap(aws, exc):
            raise
        plan = attach.plan_attach(aws, options, project)
    if named:
        console.info(escape(f"functions by name (session key {options.stack_name})"))
    elif plan.project:
        print_project(plan.project, options.stack_name)
    for warning in plan.warnings:
        console.warn(escape(warning))
    console.table(
        "Functions run here" if named else f"Functions of {options.stack_name} run here",
        ["Function", "Physical name", "Handler", "Code"],
        [[f.logical_id, name, f.handler, str(f.code_dir)] for name, f in plan.functions.items()],
    )
    attachment = attach.Attachment(aws, options, plan)
    attachment.start_debuggers()
    if options.debugpy:
        _print_debugpy_help(options.debugpy)
    raise click.exceptions.Exit(asyncio.run(attachment.run()))


def _offer_bootstrap(aws: AwsContext, problem: Exception) -> bool:
    """On a terminal, offer to deploy the helper stack now; elsewhere the error stands."""
    from plldb import bootstrap

    if not sys.stdin.isatty():
        return False
    console.warn(escape(str(problem)))
    if not click.confirm("Deploy the helper stack now (plldb bootstrap)?", default=True):
        return False
    bootstrap.setup(aws, _progress)
    return True


def _print_debugpy_help(options: debuggers.DebugpyOptions) -> None:
    from plldb import debuggers

    console.info(
        f"debugpy listening on {options.host}:{options.port}. VS Code: "
        "Run and Debug → \"Python Debugger: Remote Attach\", or this .vscode/launch.json:"
    )
    console.info(escape(debuggers.vscode_launch_json(options.host, options.port)))
    if options.wait_for_client:
        console.info("invocations wait until a debugger attaches (--wait-for-client)")


@cli.command("detach")
@click.option("--stack-name", help="Stack to restore (default: the one samconfig.toml, the CDK app "
              "or the Serverless service here names).")
@pass_aws
def detach_command(aws: AwsContext, stack_name: str | None) -> None:
    """Restore every instrumented function of a stack now (idempotent)."""
    from plldb import admin

    name = default_stack_name(stack_name)
    result = admin.detach_stack(aws, name)
    for function in result.restored:
        console.success(f"restored {escape(function)}")
    for function in result.failed:
        console.error(f"not restored: {escape(function)}")
    if not result.restored and not result.failed:
        console.info(f"nothing to restore: {escape(name)} is not instrumented")
    if result.sessions_closed:
        console.info(f"closed {len(result.sessions_closed)} session(s)")
    if result.failed:
        raise click.exceptions.Exit(1)


@cli.command("status")
@click.option("--stack-name", help="Only this stack.")
@click.option("--all", "show_all", is_flag=True,
              help="Also closed and expired sessions (the last 24 hours).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_aws
def status_command(aws: AwsContext, stack_name: str | None, show_all: bool, as_json: bool) -> None:
    """Active debugging sessions and instrumented functions (history with --all)."""
    import json

    from plldb import admin

    status = admin.stack_status(aws, stack_name)
    if not show_all:
        status["sessions"] = [s for s in status["sessions"] if s["live"]]
    if as_json:
        click.echo(json.dumps(status, indent=2, default=str))
        return
    console.info(
        f"plldb {status['plldb_version']}, helper stack {status['helper_stack_version']} "
        f"in {status['region']}"
    )
    _print_sessions(status["sessions"], show_all)
    _print_instrumented(status["instrumented_functions"])


def _print_sessions(sessions: list[dict[str, Any]], show_all: bool) -> None:
    if not sessions:
        more = "" if show_all else " (plldb status --all shows closed ones)"
        console.info(f"no {'' if show_all else 'active '}debugging session{more}")
        return
    console.table(
        "Sessions" if show_all else "Active sessions",
        ["Stack", "Session", "Status", "Since", "By"],
        [[s["stack_name"], s["session_id"], _session_state(s), s["created_at"], s["created_by"]]
         for s in sessions],
    )


def _session_state(session: dict[str, Any]) -> str:
    if session["live"] or session["status"] == "CLOSED":
        return str(session["status"])
    return f"{session['status']} (expired)"


def _print_instrumented(records: list[dict[str, Any]]) -> None:
    if not records:
        console.info("no instrumented function: every function runs in the cloud as deployed")
        return
    console.table(
        "Instrumented functions",
        ["Stack", "Function", "Status", "Session"],
        [[f["stack_name"], f["function_name"], f["status"], f["session_id"]] for f in records],
    )


def main() -> None:
    """Console-script entry point (`plldb`)."""
    sys.exit(cli.main(prog_name="plldb"))


# Issue 14's commands (invoke, events, replay) and attach's capture options live in their own module.
from plldb import cli_capture  # noqa: E402 - after attach_command, which it extends

cli_capture.add_capture_options(attach_command)
for _command in cli_capture.COMMANDS:
    cli.add_command(_command)


if __name__ == "__main__":
    main()
