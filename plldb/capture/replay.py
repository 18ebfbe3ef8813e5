"""Replay: run a captured invocation again, here, and say whether its outcome changed.

A capture (:mod:`plldb.capture.records`) is turned back into the fields of an invocation (event,
request id, ARN, time left, client context, identity, tenant id, environment) and run by
:func:`plldb.capture.invoke.run_invocation`, the executor attach uses. The new outcome is compared
with the captured one: results as JSON values; errors by type and message (a stack trace
moves with every edit and is not compared). :func:`export_pytest` writes the same check as a
pytest module, with the captures beside it as JSON.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plldb import runner
from plldb.capture import aws_calls, records
from plldb.capture.invoke import (
    CREDENTIALS_LOCAL,
    CREDENTIALS_NONE,
    InvocationFields,
    RunSetting,
    find_function,
    run_invocation,
)
from plldb.capture.lambda_environment import template_variables
from plldb.naming import SECRET_ENV_VARS

COMPARED_ERROR_KEYS = ("errorType", "errorMessage")


@dataclass
class Replayed:
    record: dict[str, Any]
    outcome: runner.Outcome
    seconds: float
    difference: list[str]  # empty: the same outcome as captured
    code_changed: bool  # the function's sources differ from the captured code version
    offline: bool = False  # AWS calls answered from the record
    calls_changed: list[str] = field(default_factory=list)  # aws_calls.calls_difference
    unanswered: list[str] = field(default_factory=list)  # calls the record could not answer
    http_calls: list[dict[str, str]] = field(default_factory=list)  # plain HTTP, listed

    @property
    def imported(self) -> bool:
        """An imported event (plldb events import): no outcome to compare, it should not fail."""
        return self.record.get("outcome") is None

    @property
    def same(self) -> bool:
        if self.imported:
            return self.outcome.ok and not self.unanswered
        return not self.difference and not self.calls_changed and not self.unanswered


def holds_calls(record: dict[str, Any]) -> bool:
    """Whether the capture recorded its AWS calls (then a replay answers them by default)."""
    return isinstance(record.get("aws_calls"), list)


def chosen(template: Path, capture_id: str | None, all_of: str | None, *,
           stage: str | None = None, cdk_out: Path | None = None,
           stack_name: str | None = None) -> list[dict[str, Any]]:
    """The capture ``capture_id``, or every capture of the function ``all_of`` (any of its
    names; it must be in the project, and have captures); ``stage``/``cdk_out``/``stack_name``
    as for :func:`find_function`."""
    folder = records.capture_dir(template)
    if capture_id:
        return [records.find_record(folder, capture_id)]
    function = find_function(template, all_of or "", stage=stage, cdk_out=cdk_out, stack_name=stack_name)
    kept = records.load_records(folder, function.logical_id)
    if not kept:
        raise records.CaptureError(f"no captured invocation of {all_of} in {folder}: plldb attach captures them")
    return kept


def fields_of(record: dict[str, Any]) -> InvocationFields:
    """The invocation a capture describes."""
    context = record["context"]
    event = record["event"] if record.get("event_is_text") else json.dumps(record["event"])
    return InvocationFields(
        event=event,
        request_id=context["request_id"],
        deadline_left_ms=context.get("deadline_left_ms"),
        invoked_function_arn=context.get("invoked_function_arn"),
        client_context=context.get("client_context"),
        cognito_identity=context.get("cognito_identity"),
        tenant_id=context.get("tenant_id"),
        environment={str(k): str(v) for k, v in record.get("environment", {}).items()},
    )


def comparable(outcome: dict[str, Any]) -> dict[str, Any]:
    """The part of an outcome a replay must reproduce."""
    if outcome["ok"]:
        return {"result": outcome["result"]}
    return {"error": {k: outcome["error"].get(k) for k in COMPARED_ERROR_KEYS}}


def outcome_dict(outcome: runner.Outcome) -> dict[str, Any]:
    """A fresh outcome in the record's shape."""
    if not outcome.ok:
        return {"ok": False, "error": outcome.error}
    text = outcome.body.decode(errors="replace")
    try:
        return {"ok": True, "result": json.loads(text)}
    except ValueError:
        return {"ok": True, "result": text}


def difference(captured: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """A unified diff of captured and new outcome (empty when they match)."""
    before, after = comparable(captured), comparable(now)
    if before == after:
        return []
    return list(difflib.unified_diff(
        _lines(before), _lines(after), "captured", "now", lineterm="", n=2,
    ))


def _lines(value: dict[str, Any]) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def replay(record: dict[str, Any], template: Path, credentials: str = CREDENTIALS_LOCAL,
           timeout: int | None = None, *, stage: str | None = None, cdk_out: Path | None = None,
           stack_name: str | None = None, setting: RunSetting | None = None,
           offline: bool | None = None) -> Replayed:
    """Run ``record`` again with the function as it is in ``template`` now (``stage``/``cdk_out``/
    ``stack_name`` as for :func:`find_function`); the captured environment, reserved variables
    included, is the function's, over ``setting``'s defaults.

    ``offline`` (the default when the record holds AWS calls) answers every AWS call from the
    record, with no credentials at all; otherwise the calls go to AWS with ``credentials``. In
    both cases the calls made now are compared with the recorded ones."""
    function = find_function(template, record["function"], stage=stage, cdk_out=cdk_out, stack_name=stack_name)
    offline = holds_calls(record) if offline is None else offline
    with aws_calls.replaying(record, offline) as tape:
        outcome, seconds = run_invocation(function, fields_of(record), CREDENTIALS_NONE if offline else credentials,
                                          timeout, setting=setting)
    now = tape.snapshot()
    return Replayed(
        record=record,
        outcome=outcome,
        seconds=seconds,
        difference=difference(record["outcome"], outcome_dict(outcome)) if record.get("outcome") else [],
        code_changed=records.code_version(function) != record.get("code_version"),
        offline=offline,
        calls_changed=aws_calls.calls_difference(record["aws_calls"], now) if holds_calls(record) else [],
        unanswered=list(tape.missed),
        http_calls=list(tape.http_calls),
    )


def with_event(record: dict[str, Any], text: str) -> dict[str, Any]:
    """``record`` with the event the user edited (``--edit``); it must still be JSON."""
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise records.CaptureError(f"the edited event is not valid JSON ({exc}): nothing was run") from exc
    return {**record, "event": event, "event_is_text": False}


def not_replayed(record: dict[str, Any]) -> list[str]:
    """Variables the function had that the capture left out as secrets (credentials aside:
    --credentials chooses those); the handler sees your local value of each, if any."""
    return [name for name in record.get("environment_left_out", []) if name not in SECRET_ENV_VARS]


def check(record: dict[str, Any], template: Path) -> str | None:
    """None when ``record`` replays to its captured outcome, else the diff (what tests exported
    by earlier versions of plldb call; they run through plldb's executor)."""
    replayed = replay(record, template)
    return None if replayed.same else "\n".join(replayed.difference)


def summary(results: list[Replayed]) -> str:
    changed = sum(1 for r in results if not r.same)
    return f"{len(results) - changed} same, {changed} changed"


# --- Export as a pytest module -------------------------------------------------------------

HELPER_PACKAGE = "plldb_hermetic"
# The modules an exported test runs on: the standard library, botocore and each other only.
HELPER_MODULES = ("aws_values.py", "aws_wire.py", "secrets.py", "standalone.py")

TEST_MODULE = '''"""Regression tests exported by `plldb events export`: captured invocations of {functions}.

Each capture in {data} runs the function's handler again with its event, context fields and
environment; every AWS call is answered from the capture (no credentials, no network). A
test fails when the result (or error type and message) is no longer the one captured, when
the AWS calls differ, or when the handler makes a call the capture does not hold.
Needs pytest and boto3 (or botocore); plldb_hermetic/ beside this file is the runner.
"""

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # plldb_hermetic/ is beside this file, wherever pytest runs
    sys.path.insert(0, str(HERE))

from plldb_hermetic.standalone import check  # noqa: E402

CAPTURES = json.loads((HERE / {data!r}).read_text(encoding="utf-8"))


@pytest.mark.parametrize("capture", CAPTURES, ids=[c["function"] + "-" + c["id"][:8] for c in CAPTURES])
def test_captured_outcome(capture):
    problems = check(capture, HERE)
    assert not problems, "changed since the capture:\\n" + "\\n".join(problems)
'''


def export_pytest(chosen: list[dict[str, Any]], target: Path, template: Path) -> Path:
    """Write ``target`` (a pytest module), the captures beside it as ``<stem>.json`` (both
    readable by their owner only: they hold captured data) and the runner package
    ``plldb_hermetic/``; returns the JSON file. Each capture says where its function's
    handler and folders are, relative to the module, so the set can be committed."""
    if target.suffix != ".py":
        raise records.CaptureError(f"--pytest {target}: give a Python file name, such as tests/test_captured.py")
    data = target.with_suffix(".json")
    target.parent.mkdir(parents=True, exist_ok=True)
    here = target.parent.resolve()
    exported = [{**record, "exported": _where(record, find_function(template, record["function"]), here)}
                for record in chosen]
    _write_helpers(here / HELPER_PACKAGE)
    records.write_owner_only(data, json.dumps(exported, indent=1, ensure_ascii=False) + "\n")
    functions = ", ".join(sorted({r["function"] for r in chosen}))
    records.write_owner_only(target, TEST_MODULE.format(functions=functions, data=data.name))
    return data


def _where(record: dict[str, Any], function: Any, here: Path) -> dict[str, Any]:
    """The handler and the folders it imports from (code folder first), relative to ``here``,
    and the template's own values of variables the capture left out as secret-looking (they
    are in the project already; a replay takes them from the template too)."""
    variables, _ = template_variables(function)
    left_out = set(record.get("environment_left_out", []))
    return {"handler": function.handler,
            "import_path": [_relative(Path(p).resolve(), here) for p in function.import_path],
            "template_environment": {k: v for k, v in variables.items() if k in left_out}}


def _write_helpers(package: Path) -> None:
    """Copy the runner's modules (plldb's own, unchanged) into ``package``."""
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text(
        '"""Copied by `plldb events export` from plldb: runs exported captures (see standalone.py)."""\n')
    source = Path(__file__).resolve().parent
    for name in HELPER_MODULES:
        (package / name).write_text((source / name).read_text(encoding="utf-8"), encoding="utf-8")


def _relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start``, with ``..`` where needed (POSIX separators)."""
    return Path(os.path.relpath(path, start)).as_posix()
