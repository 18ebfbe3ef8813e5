"""`plldb detach` and `plldb status`: restore a stack now, and what is attached where."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from plldb import console
from plldb.commands.common import escape, pass_aws
from plldb.commands.project import default_stack_name

if TYPE_CHECKING:
    from plldb.cloud.aws import AwsContext


@click.command("detach")
@click.option("--stack-name", help="Stack to restore (default: the one samconfig.toml, the CDK app "
              "or the Serverless service here names).")
@pass_aws
def detach_command(aws: AwsContext, stack_name: str | None) -> None:
    """Restore every instrumented function of a stack now (idempotent)."""
    from plldb.session import admin

    name = default_stack_name(stack_name)
    result = admin.detach_stack(aws, name)
    for function in result.restored:
        console.success(f"restored {escape(function)}")
    for function in result.failed:
        console.error(f"not restored: {escape(function)}")
    if not result.restored and not result.failed and not result.sessions_kept:
        console.info(f"nothing to restore: {escape(name)} is not instrumented")
    if result.sessions_closed:
        console.info(f"closed {len(result.sessions_closed)} session(s)")
    if result.sessions_kept:
        console.info(escape(
            f"{name} is a shared stage: the live sessions of {', '.join(result.sessions_kept)} "
            "keep their routes, and its functions stay instrumented until the last one leaves"))
    if result.failed:
        raise click.exceptions.Exit(1)


@click.command("status")
@click.option("--stack-name", help="Only this stack.")
@click.option("--all", "show_all", is_flag=True,
              help="Also closed and expired sessions (the last 24 hours).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_aws
def status_command(aws: AwsContext, stack_name: str | None, show_all: bool, as_json: bool) -> None:
    """Active debugging sessions and instrumented functions (history with --all)."""
    import json

    from plldb.session import admin

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
    _print_routes([s for s in sessions if s["live"] and (s["routes"] or s["mirror"])])


def _print_routes(shared: list[dict[str, Any]]) -> None:
    """Every live route of the shared stages, in the order they win (earliest first)."""
    if not shared:
        return
    console.table(
        "Routes on shared stages (an invocation goes to the first that matches; none: the cloud)",
        ["Stack", "Takes", "By"],
        [[s["stack_name"], _takes(s), s["created_by"]] for s in shared],
    )


def _takes(session: dict[str, Any]) -> str:
    """What a session receives: everything, its routes, or copies (mirror)."""
    what = ", ".join(session["routes"]) or "everything"
    return f"copies of {what} (mirror)" if session["mirror"] else what


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
