"""`plldb attach`: debug a stack's (or named functions') Python functions here until Ctrl-C."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from plldb import console
from plldb.commands.capture import (
    ALLOW_REMOTE_OPTION,
    PROJECT_OPTIONS,
    add_capture_options,
    debugpy_choice,
)
from plldb.commands.common import escape, pass_aws, progress
from plldb.commands.project import named_functions, print_project, project_stack

if TYPE_CHECKING:
    from plldb.cloud.aws import AwsContext
    from plldb.local import debuggers


@click.command("attach")
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
              help="Only these functions (logical id, physical name, serverless.yml key, CDK "
              "construct path or id, or a glob; `plldb functions` lists them); repeatable.")
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
@ALLOW_REMOTE_OPTION
@click.option("--pycharm-port", type=click.IntRange(1, 65535),
              help="Connect to PyCharm's \"Python Debug Server\" on this port (needs pydevd-pycharm).")
@click.option("--route", "routes", multiple=True, metavar="EXPR",
              help="Share the stage: take only invocations this matches (header:NAME=VALUE, "
              "path:A.B=VALUE, tenant:ID, attr:NAME=VALUE, sample:P%); repeatable, any may "
              "match. The rest run as deployed. docs/routes.md.")
@click.option("--mirror", is_flag=True,
              help="Share the stage: the deployed code answers; a copy runs here afterwards and "
              "the difference is shown (with --route: only what the routes match).")
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
    allow_remote: bool,
    pycharm_port: int | None,
    routes: tuple[str, ...],
    mirror: bool,
    force: bool,
    credentials: str,
) -> None:
    """Run the stack's Python functions here, under your debugger, until Ctrl-C."""
    import asyncio

    from plldb import naming
    from plldb.cloud.helper_stack import HelperStackMissing, HelperStackOutdated
    from plldb.session import attach
    from plldb.session.plan import AttachOptions, plan_attach

    debugpy = debugpy_choice(use_debugpy, debugpy_host, debugpy_port, wait_for_client, allow_remote)
    named = named_functions(stack_name, functions, function_names, codes, handlers)
    routes = _checked_routes(routes, mirror, bool(named))
    stack, project = (naming.by_name_key([n.name for n in named]), None) if named else \
        project_stack(stack_name, template, stage, cdk_out)
    options = AttachOptions(
        stack_name=stack,
        named=tuple(named),
        template=template,
        stage=stage,
        cdk_out=cdk_out,
        functions=functions,
        timeout=timeout,
        debugpy=debugpy,
        pycharm=("localhost", pycharm_port) if pycharm_port else None,
        force=force,
        credentials=credentials,
        routes=routes,
        mirror=mirror,
    )
    try:
        plan = plan_attach(aws, options, project)
    except (HelperStackMissing, HelperStackOutdated) as exc:
        if not _offer_bootstrap(aws, exc):
            raise
        plan = plan_attach(aws, options, project)
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


def _checked_routes(routes: tuple[str, ...], mirror: bool, named: bool) -> tuple[str, ...]:
    """The --route expressions in their canonical form; a usage error names the bad one."""
    from plldb import routing

    if named and (routes or mirror):
        raise click.UsageError("--route and --mirror share a stack's stage: they do not go "
                               "with --function-name (a by-name session takes every invocation)")
    try:
        return tuple(str(route) for route in routing.parse_routes(routes))
    except routing.RouteError as exc:
        raise click.BadParameter(str(exc), param_hint="--route") from exc


def _offer_bootstrap(aws: AwsContext, problem: Exception) -> bool:
    """On a terminal, offer to deploy the helper stack now; elsewhere the error stands."""
    from plldb.cloud import bootstrap

    if not sys.stdin.isatty():
        return False
    console.warn(escape(str(problem)))
    if not click.confirm("Deploy the helper stack now (plldb bootstrap)?", default=True):
        return False
    bootstrap.setup(aws, progress)
    return True


def _print_debugpy_help(options: debuggers.DebugpyOptions) -> None:
    from plldb.local import debuggers

    console.info(
        f"debugpy listening on {options.host}:{options.port}. VS Code: "
        "Run and Debug → \"Python Debugger: Remote Attach\", or this .vscode/launch.json:"
    )
    console.info(escape(debuggers.vscode_launch_json(options.host, options.port)))
    if options.wait_for_client:
        console.info("invocations wait until a debugger attaches (--wait-for-client)")


add_capture_options(attach_command)
