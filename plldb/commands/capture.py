"""The commands of capture and replay (issue 14): `plldb invoke`, `events`, `replay`, and
attach's --no-capture, --capture-max, --capture-redact and --capture-keep-secrets.

Parsing and printing only (:mod:`plldb.cli` registers these commands); the work
is in :mod:`plldb.capture.invoke`, :mod:`plldb.capture.records` and :mod:`plldb.capture.replay`, imported when a
command runs so that start-up stays light. Errors are those modules' exception types, listed
in :func:`plldb.cli.user_errors`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from plldb import console
from plldb.commands.common import escape

if TYPE_CHECKING:
    from plldb.local import debuggers


def _debugpy_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """--debugpy, --debugpy-host, --debugpy-port and --wait-for-client, as for attach."""
    for option in reversed((
        click.option("--debugpy", "use_debugpy", is_flag=True,
                     help="Start debugpy for VS Code \"Python Debugger: Remote Attach\"."),
        click.option("--debugpy-host", default="127.0.0.1", show_default=True),
        click.option("--debugpy-port", type=click.IntRange(1, 65535), default=5678, show_default=True),
        click.option("--wait-for-client", is_flag=True,
                     help="Run the function only once a debugger has attached (with --debugpy)."),
        ALLOW_REMOTE_OPTION,
    )):
        command = option(command)
    return command


ALLOW_REMOTE_OPTION = click.option(
    "--debugpy-allow-remote", "allow_remote", is_flag=True,
    help="Let --debugpy-host be an address other machines reach (anyone who connects runs code here).",
)


def debugpy_choice(use_debugpy: bool, host: str, port: int, wait: bool,
                   allow_remote: bool) -> debuggers.DebugpyOptions | None:
    """The debugpy options of the command line, checked: debugpy reachable from other machines
    only with --debugpy-allow-remote, and then with a warning."""
    from plldb.local import debuggers

    if (wait or host != "127.0.0.1" or port != 5678) and not use_debugpy:
        raise click.UsageError("--wait-for-client, --debugpy-host and --debugpy-port need --debugpy")
    if not use_debugpy:
        return None
    if not debuggers.is_loopback(host):
        if not allow_remote:
            raise click.UsageError(
                f"--debugpy-host {host} is not a loopback address: anyone who reaches it could run "
                "code in plldb, with the functions' credentials. Use 127.0.0.1 (and an SSH tunnel "
                "to reach it from elsewhere), or add --debugpy-allow-remote if you mean it"
            )
        console.warn(escape(debuggers.remote_debugpy_warning(host)))
    return debuggers.DebugpyOptions(host, port, wait)


TEMPLATE_OPTION = click.option(
    "--template", type=click.Path(path_type=Path), default=Path("template.yaml"), show_default=True,
    help="SAM/CFN template of the project (also .aws-sam/build/template.yaml).",
)
# Which project discovery reads besides --template; attach has them too (plldb.cli).
PROJECT_OPTIONS = (
    click.option("--cdk-out", type=click.Path(path_type=Path), metavar="DIR",
                 help="A CDK app's synthesized folder (cdk synth --output; default cdk.out)."),
    click.option("--stage", help="Serverless Framework stage (default: provider.stage, else dev)."),
)
_STACK_OPTION = click.option(
    "--stack-name", help="Which stack of a multi-stack CDK app; and the deployed stack whose function "
    "gives the values of variables the template cannot (default: the project's stack).")
_RUN_OPTIONS = (
    click.option("--credentials", type=click.Choice(["local", "none"]), default="local",
                 show_default=True, help="Your local profile's credentials, or none at all."),
    click.option("--timeout", type=click.IntRange(1, 900), metavar="SECONDS",
                 help="Time the function gets (default: its own; 900 with --debugpy)."),
)


def _run_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((TEMPLATE_OPTION, *PROJECT_OPTIONS, _STACK_OPTION, *_RUN_OPTIONS)):
        command = option(command)
    return _debugpy_flags(command)


def add_capture_options(command: click.Command) -> None:
    """attach keeps every invocation it serves (plldb.capture.records): --no-capture, --capture-max and
    --capture-redact are added to it here, and the capture writer runs for the whole attach."""
    command.params += [
        click.Option(["--no-capture"], is_flag=True, help="Keep no record of the invocations (.plldb/)."),
        click.Option(["--capture-max"], type=click.IntRange(1, 100_000), default=50, show_default=True,
                     metavar="N", help="Records kept per function; the oldest are pruned."),
        click.Option(["--capture-redact"], multiple=True, metavar="PATH",
                     help="Blank this field of events and results before writing, e.g. "
                     "headers.Authorization or Records[*].body; repeatable."),
        click.Option(["--capture-keep-secrets"], is_flag=True,
                     help="Keep Authorization, cookies, tokens and passwords in captures "
                     "(blanked by default)."),
    ]
    attach = command.callback
    assert attach is not None

    @functools.wraps(attach)
    def with_capture(*args: Any, no_capture: bool, capture_max: int, capture_redact: tuple[str, ...],
                     capture_keep_secrets: bool, **kwargs: Any) -> Any:
        from plldb.capture import records
        from plldb.project.discovery import project_found

        if no_capture or not project_found(kwargs["template"]):  # attach reports a missing project
            return attach(*args, **kwargs)
        paths = tuple(records.parse_path(path) for path in capture_redact)
        folder = records.capture_dir(kwargs["template"])
        records.start(records.CaptureOptions(folder, capture_max, paths, capture_keep_secrets))
        try:
            return attach(*args, **kwargs)
        finally:
            records.stop()

    command.callback = with_capture


@click.command("invoke")
@click.argument("function")
@click.option("--event", metavar="FILE|-|JSON", help="The event: a JSON file, - for stdin, or JSON text (default {}).")
@_run_flags
def invoke_command(function: str, event: str | None, template: Path, cdk_out: Path | None, stage: str | None,
                   stack_name: str | None, credentials: str, timeout: int | None, use_debugpy: bool,
                   debugpy_host: str, debugpy_port: int, wait_for_client: bool,
                   allow_remote: bool) -> None:
    """Run one function of the local project here, once; print its result (exit 0) or error (exit 1).

    FUNCTION is any of its names: logical id, physical name, serverless.yml key, CDK construct
    path or id (`plldb functions` lists them)."""
    from plldb.capture import deployed, invoke

    debugpy = debugpy_choice(use_debugpy, debugpy_host, debugpy_port, wait_for_client, allow_remote)
    local, project = invoke.find_in_project(template, function, _warn, stage=stage, cdk_out=cdk_out,
                                            stack_name=stack_name)
    fields = invoke.InvocationFields(event=invoke.read_event(event))
    profile, region = _region()
    setting = invoke.run_setting(local, region, stack_name or project.stack_name, bool(stack_name),
                                 deployed.deployed_reader(profile, region.name), _warn)
    invoke.start_debugger(debugpy)
    outcome, _ = invoke.run_invocation(local, fields, credentials, invoke.time_allowed(timeout, bool(debugpy)),
                                       setting=setting)
    click.echo(invoke.outcome_text(outcome))
    raise click.exceptions.Exit(0 if outcome.ok else 1)


class _EventsGroup(click.Group):
    """`plldb events [FUNCTION]` lists; `show` and `export` are subcommands (`list` is implied)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group("events", cls=_EventsGroup)
def events_group() -> None:
    """Invocations captured by attach (in .plldb/): list, show, export as pytest."""


@events_group.command("list")
@click.argument("function", required=False)
@TEMPLATE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def events_list(function: str | None, template: Path, as_json: bool) -> None:
    """List captured invocations (of FUNCTION, a logical id), oldest first."""
    import json

    from plldb.capture import records

    folder = records.capture_dir(template)
    rows = [records.summary(record) for record in records.load_records(folder, function)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        console.info(f"no captured invocation{' of ' + escape(function) if function else ''} in "
                     f"{escape(str(folder))}: plldb attach captures them")
    else:
        console.table(f"Captured invocations ({escape(str(folder))})",
                      ["Time", "Function", "Outcome", "Duration", "Size", "Id"],
                      [[r["time"], r["function"], r["outcome"],
                        "-" if r["duration_ms"] is None else f"{r['duration_ms']:.0f} ms",
                        f"{r['event_bytes']} B", r["short_id"]] for r in rows])


@events_group.command("show")
@click.argument("capture_id", metavar="ID")
@TEMPLATE_OPTION
def events_show(capture_id: str, template: Path) -> None:
    """Print one captured invocation (the whole record, as JSON)."""
    import json

    from plldb.capture import records

    record = records.find_record(records.capture_dir(template), capture_id)
    click.echo(json.dumps(record, indent=2, ensure_ascii=False))


@events_group.command("export")
@click.argument("capture_ids", metavar="ID...", nargs=-1, required=True)
@click.option("--pytest", "target", type=click.Path(path_type=Path), required=True, metavar="FILE",
              help="The test module to write (the captures go beside it as FILE's name .json).")
@TEMPLATE_OPTION
def events_export(capture_ids: tuple[str, ...], target: Path, template: Path) -> None:
    """Write captured invocations as a pytest module that checks their outcome stays the same."""
    from plldb.capture import records, replay

    folder = records.capture_dir(template)
    chosen = [records.find_record(folder, capture_id) for capture_id in capture_ids]
    data = replay.export_pytest(chosen, target, template)
    console.success(f"wrote {escape(str(target))} and {escape(str(data))} ({len(chosen)} capture(s))")
    console.warn(escape(
        f"{data} holds captured events, results and environments (well-known secrets blanked "
        "unless attach ran with --capture-keep-secrets; credentials never kept): both files are "
        "readable by you only; read them before you commit or share them"
    ))


@click.command("replay")
@click.argument("capture_id", metavar="ID", required=False)
@click.option("--all", "all_of", metavar="FUNCTION", help="Replay every capture of FUNCTION and summarise.")
@click.option("--edit", is_flag=True, help="Open the event in $EDITOR first, and replay what you save.")
@click.option("--offline/--live", "offline", default=None,
              help="Answer the handler's AWS calls from the capture, with no credentials (the "
              "default when the capture recorded them), or call AWS.")
@_run_flags
def replay_command(capture_id: str | None, all_of: str | None, edit: bool, offline: bool | None, template: Path,
                   cdk_out: Path | None, stage: str | None, stack_name: str | None, credentials: str,
                   timeout: int | None, use_debugpy: bool, debugpy_host: str, debugpy_port: int,
                   wait_for_client: bool, allow_remote: bool) -> None:
    """Run a captured invocation again and show whether its outcome changed (exit 1 if so)."""
    from plldb.capture import invoke, replay

    if bool(capture_id) == bool(all_of):
        raise click.UsageError("give a capture ID, or --all FUNCTION")
    debugpy = debugpy_choice(use_debugpy, debugpy_host, debugpy_port, wait_for_client, allow_remote)
    if edit and all_of:
        raise click.UsageError("--edit replays one capture: give its ID, not --all")
    chosen = replay.chosen(template, capture_id, all_of, stage=stage, cdk_out=cdk_out, stack_name=stack_name)
    if edit:
        chosen = [_edited(chosen[0])]
    for name in sorted({name for record in chosen for name in replay.not_replayed(record)}):
        console.warn(f"{escape(name)} was not captured (secret): the handler gets your local value, if any")
    invoke.start_debugger(debugpy)
    allowed = invoke.time_allowed(timeout, bool(debugpy))
    setting = invoke.RunSetting(_region()[1])
    if offline and not any(replay.holds_calls(r) for r in chosen):
        raise click.UsageError("--offline needs a capture that recorded its AWS calls (made by attach "
                               "since plldb recorded them); replay it with --live")
    results = [replay.replay(r, template, credentials, allowed, stage=stage, cdk_out=cdk_out,
                             stack_name=stack_name, setting=setting, offline=offline) for r in chosen]
    for result in results:
        _print_replayed(result)
    if all_of:
        console.info(replay.summary(results))
    raise click.exceptions.Exit(0 if all(r.same for r in results) else 1)


def _warn(text: str) -> None:
    console.warn(escape(text))


def _region() -> tuple[str | None, Any]:
    """--profile, and the region the function runs in (--region, else the profile's, else a
    default with a note; a :class:`plldb.capture.lambda_environment.Region`)."""
    from plldb.capture.lambda_environment import local_region

    settings = click.get_current_context().find_root().obj or {}
    return settings.get("profile"), local_region(settings.get("profile"), settings.get("region"))


def _edited(record: dict[str, Any]) -> dict[str, Any]:
    """The capture with the event as saved in $EDITOR (unchanged when not saved)."""
    import json

    from plldb.capture import replay

    text = click.edit(json.dumps(record["event"], indent=2, ensure_ascii=False), extension=".json")
    return record if text is None else replay.with_event(record, text)


def _print_replayed(result: Any) -> None:
    short = result.record["id"][:8]
    if result.imported:
        _print_imported(result)
        return
    notes = [n for n, shown in (("code changed since the capture", result.code_changed),
                                ("AWS calls answered from the capture", result.offline)) if shown]
    note = f" ({'; '.join(notes)})" if notes else ""
    if result.same:
        console.success(f"{short} {escape(result.record['function'])}: same{note}")
    else:
        console.info(f"[yellow]{short} {escape(result.record['function'])}: changed{note}[/yellow]")
    for line in result.difference:
        console.info(escape(line))
    for text in result.unanswered:
        console.error(escape(text))
    if result.calls_changed:
        console.info("AWS calls changed:")
    for line in result.calls_changed:
        console.info(escape(line))
    hosts = sorted({f"{c['method']} {c['host']}" for c in result.http_calls})
    if hosts and result.offline:
        console.warn(escape(f"the handler also made plain HTTP requests, not answered from the capture: {', '.join(hosts)}"))


def _print_imported(result: Any) -> None:
    """An imported event has no outcome to compare: say how it ran."""
    short, name = result.record["id"][:8], escape(result.record["function"])
    source = escape(result.record["imported"].get("from", "a file"))
    if result.outcome.ok:
        console.success(f"{short} {name}: ran ok (imported from {source})")
    else:
        error = result.outcome.error or {}
        console.info(f"[yellow]{short} {name}: failed (imported from {source}): "
                     f"{escape(str(error.get('errorType')))}: {escape(str(error.get('errorMessage')))}[/yellow]")
    for text in result.unanswered:
        console.error(escape(text))


@events_group.command("import")
@click.argument("function")
@click.option("--sqs-dlq", "queue", metavar="QUEUE", help="Read the messages of this queue (URL or name), "
              "without deleting them; each becomes the SQS event of one message.")
@click.option("--from-file", "path", type=click.Path(path_type=Path), metavar="FILE",
              help="EventBridge events (an archive or replay export: JSON, an array, or one a line), or "
              "CloudWatch Logs lines holding a Powertools log_event.")
@click.option("--max", "limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Messages read from the queue at most.")
@click.option("--keep-secrets", is_flag=True, help="Keep Authorization, cookies, tokens and passwords "
              "(blanked by default).")
@TEMPLATE_OPTION
@PROJECT_OPTIONS[0]
@PROJECT_OPTIONS[1]
def events_import(function: str, queue: str | None, path: Path | None, limit: int, keep_secrets: bool,
                  template: Path, cdk_out: Path | None, stage: str | None) -> None:
    """Keep events from a dead-letter queue or a file as captures of FUNCTION (plldb replay runs them)."""
    from plldb.capture import imports, invoke, records

    if bool(queue) == bool(path):
        raise click.UsageError("give --sqs-dlq QUEUE or --from-file FILE")
    local = invoke.find_function(template, function, _warn, stage=stage, cdk_out=cdk_out)
    found = _queue_events(queue, limit) if queue else imports.file_events(path)  # type: ignore[arg-type]
    folder = records.capture_dir(template)
    records.prepare_folder(folder)
    kept = records.load_records(folder, local.logical_id)
    made = [imports.record_of(local, event, source, keep_secrets) for event, source in found]
    for record in made:
        records.write_record(folder, record, len(kept) + len(made))  # nothing of yours pruned
    where = f"queue {queue}" if queue else str(path)
    console.success(escape(f"kept {len(made)} event(s) of {where} as captures of {local.logical_id} in {folder}"))
    for record in made:
        console.info(f"  {record['id'][:8]}  {escape(json.dumps(record['imported']))}")


def _queue_events(queue: str, limit: int) -> list[Any]:
    """The queue's messages as SQS events, with your credentials; AWS errors said plainly."""
    from plldb.capture import imports
    from plldb.cloud.aws import AwsContext, error_code

    profile, region = _region()
    try:
        return imports.sqs_events(AwsContext(profile=profile, region=region.name).client("sqs"), queue, limit)
    except imports.NotEvents:
        raise
    except Exception as exc:  # noqa: BLE001 - any AWS failure is one line for the user
        code = error_code(exc) or type(exc).__name__
        raise imports.NotEvents(f"--sqs-dlq {queue}: cannot read the queue ({code}: "
                                f"{' '.join(str(exc).split())[:200]})") from None


COMMANDS = (invoke_command, events_group, replay_command)
