"""`plldb functions` (alias `plldb ls`): what plldb found in the project here.

For each function: the names a user may type (logical id, physical name, serverless.yml key,
CDK construct path and id), the kind of project, the source folder and handler, its layers
and where they map; then every function that cannot run here, with why. `--json` for
scripts. Reads the project only (no AWS call), as invoke does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from plldb import console
from plldb.commands.capture import PROJECT_OPTIONS, TEMPLATE_OPTION
from plldb.commands.common import escape

if TYPE_CHECKING:
    from plldb.project.model import Discovery, LocalFunction


def _project_flags(command: Any) -> Any:
    for option in reversed((TEMPLATE_OPTION, *PROJECT_OPTIONS,
                            click.option("--stack-name", help="Which stack of a multi-stack CDK app."),
                            click.option("--json", "as_json", is_flag=True, help="Machine-readable output."))):
        command = option(command)
    return command


@click.command("functions")
@_project_flags
def functions_command(template: Path, cdk_out: Path | None, stage: str | None, stack_name: str | None,
                      as_json: bool) -> None:
    """List the functions plldb found in the project, the names you may give them, and the ones skipped."""
    from plldb.project.discovery import discover

    discovery = discover(template, stage=stage, cdk_out=cdk_out, stack_name=stack_name)
    listing = describe(discovery)
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    _print(listing)


def describe(discovery: Discovery) -> dict[str, Any]:
    """The listing as data (what --json prints)."""
    from plldb.project.names import project_description

    return {
        "project": project_description(discovery),
        "kind": discovery.kind,
        "stack": discovery.stack_name,
        "functions": [_function(discovery, f) for _, f in sorted(discovery.functions.items())],
        "skipped": [{"logical_id": name, "names": discovery.names.get(name, []), "why": why}
                    for name, why in sorted(discovery.skipped.items())],
        "warnings": list(discovery.warnings),
    }


def _function(discovery: Discovery, function: LocalFunction) -> dict[str, Any]:
    return {
        "logical_id": function.logical_id,
        "names": discovery.names.get(function.logical_id, []),
        "kind": discovery.kind,
        "handler": function.handler,
        "runtime": function.runtime,
        "source": str(function.code_dir),
        "import_path": [str(p) for p in function.import_path],
        "layers": [{"name": m.name, "folder": str(m.folder) if m.folder else None, "note": m.note}
                   for m in function.layers],
    }


def _print(listing: dict[str, Any]) -> None:
    stack = f": stack {listing['stack']}" if listing["stack"] else ""
    console.info(escape(f"{listing['project']}{stack}"))
    rows = [[f["logical_id"], ", ".join(f["names"]), f"{f['source']} ({f['handler']})",
             "; ".join(f"{m['name']} -> {m['folder'] or m['note']}" for m in f["layers"]) or "-"]
            for f in listing["functions"]]
    if rows:
        console.table("Functions plldb runs here", ["Logical id", "Other names", "Source (handler)", "Layers"],
                      [[escape(cell) for cell in row] for row in rows])
    else:
        console.info("no Python function of this project can run here")
    for skipped in listing["skipped"]:
        console.warn(escape(f"skipped {skipped['logical_id']}: {skipped['why']}"))
    for warning in listing["warnings"]:
        console.warn(escape(warning))


ls_command = click.Command("ls", params=functions_command.params, callback=functions_command.callback,
                           help="The same as `plldb functions`.")
COMMANDS = (functions_command, ls_command)
