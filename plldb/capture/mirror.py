"""Mirror mode (``attach --mirror``): what the deployed code answered against the local code.

In a mirror session the deployed code answers the caller in the cloud; the shim then posts a
copy of the event and of the cloud's result to the developer's connection (a ``mirror``
message, docs/protocol.md). Attach runs the local handler on that event, through the executor
that runs invocations (:mod:`plldb.session.serving`), answers nothing, and this module says
what came of it:

- :func:`compare`: the cloud's result against the local outcome, with the comparison
  ``plldb replay`` makes (:func:`plldb.capture.replay.difference`: results as JSON values,
  errors by type and message), the diff labelled ``deployed`` and ``local``;
- :func:`report`: the lines attach prints, ``mirror <function> <request id>: same (cloud
  12 ms ago, local 3.1 s)``, or ``changed`` and the diff;
- :func:`keep`: the capture of a mirror, whose outcome is the CLOUD's result (a replay then
  compares the code of the day with what production answered), marked ``"mirror"``.

Times: the copy says how long the cloud invocation had when it started (``remaining_ms``),
so it started at ``deadline_ms - remaining_ms`` (epoch, the function's clock). The local
run gets as long, counted from when the copy arrived (:func:`local_invocation`).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from rich.markup import escape

from plldb import limits, runner
from plldb.capture import records, replay
from plldb.local.executor import (
    BAD_INVOCATION_ERROR,
    BUSY_ERROR,
    CLOSED_ERROR,
    UNKNOWN_FUNCTION_ERROR,
)
from plldb.project.model import LocalFunction

log = logging.getLogger(__name__)

RECORD_MARK = "mirror"  # the key a mirror's capture carries (records.build_record has none)
SEEN_LIMIT = 1000  # request ids remembered to ignore a mirror posted twice
DEPLOYED_LABEL = "deployed (what the cloud answered)"
LOCAL_LABEL = "local (your code here)"
# The executor's own refusals: nothing ran, so there is nothing to compare.
NOT_RUN_ERRORS = frozenset({UNKNOWN_FUNCTION_ERROR, BUSY_ERROR, CLOSED_ERROR, BAD_INVOCATION_ERROR})


class Seen:
    """The request ids of the last ``limit`` mirrors, to ignore one posted again."""

    def __init__(self, limit: int = SEEN_LIMIT) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, request_id: str) -> bool:
        """True the first time ``request_id`` is given (and it is remembered from then on)."""
        if request_id in self._ids:
            return False
        self._ids[request_id] = None
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True


# --- The copy, as an invocation -------------------------------------------------------------


def local_invocation(message: dict[str, Any], arrived: float) -> dict[str, Any]:
    """The invocation the executor runs for ``message`` (a whole mirror), which arrived at
    ``arrived`` (epoch seconds): the same fields, and a deadline ``remaining_ms`` after its
    arrival (the cloud's deadline has usually passed by then)."""
    fields = {k: v for k, v in message.items() if k not in ("type", "cloud", "remaining_ms")}
    return {**fields, "deadline_ms": int(arrived * 1000) + message["remaining_ms"]}


def cloud_age_ms(message: dict[str, Any], arrived: float) -> int:
    """How long before the copy arrived the cloud invocation started (0 if the two clocks
    disagree the other way)."""
    started_ms = message["deadline_ms"] - message["remaining_ms"]
    return max(0, int(arrived * 1000) - started_ms)


def cloud_outcome(cloud: dict[str, Any]) -> runner.Outcome:
    """The cloud's result as an outcome (what a capture records)."""
    if "error" in cloud:
        return runner.Outcome.failure(cloud["error"], {})
    return runner.Outcome(True, cloud["response"].encode())


# --- Comparing and printing -------------------------------------------------------------------


def compare(cloud: dict[str, Any], local: runner.Outcome) -> list[str]:
    """The diff of the cloud's result (``-``) and the local outcome (``+``), as ``plldb
    replay`` compares them; empty when they are the same."""
    lines = replay.difference(replay.outcome_dict(cloud_outcome(cloud)), replay.outcome_dict(local))
    if len(lines) >= 2 and lines[0].startswith("--- ") and lines[1].startswith("+++ "):
        lines = [f"--- {DEPLOYED_LABEL}", f"+++ {LOCAL_LABEL}", *lines[2:]]
    return lines


def not_run(local: runner.Outcome) -> str | None:
    """Why the local code did not run at all (the executor refused it), else None."""
    if local.ok or local.error is None or local.error.get("errorType") not in NOT_RUN_ERRORS:
        return None
    return str(local.error.get("errorMessage") or local.error.get("errorType"))


def duration(ms: float) -> str:
    """``12 ms`` under a second, ``3.1 s`` above."""
    return f"{ms:.0f} ms" if round(ms) < 1000 else f"{ms / 1000:.1f} s"


def report(function: str, request_id: str, difference: list[str], age_ms: int,
           seconds: float) -> list[str]:
    """The lines (console markup) attach prints when the local run of a mirror ended:
    ``cloud … ago`` is how long before the copy arrived the cloud invocation started
    (:func:`cloud_age_ms`), ``local …`` how long the local run took."""
    verdict = "[yellow]changed[/yellow]" if difference else "[green]same[/green]"
    times = f"(cloud {duration(age_ms)} ago, local {duration(seconds * 1000)})"
    head = f"mirror {escape(function)} {escape(request_id)}: {verdict} {times}"
    return [head, *(escape(line) for line in difference)]


def not_run_line(function: str, request_id: str, reason: str) -> str:
    """The line for a mirror whose local code did not run (console markup)."""
    return escape(
        f"mirror {function} {request_id}: not run here: {reason}; the cloud answered the "
        "caller as usual"
    )


def unknown_function_reason(function_name: str) -> str:
    return (
        f"function {function_name} is not mapped to local code in this plldb session "
        "(`plldb functions` lists what this project maps)"
    )


def skipped_line(function: str, message: dict[str, Any]) -> str:
    """The line for a ``too_large`` mirror: nothing ran, and why (console markup)."""
    size = message["too_large"]
    return escape(
        f"mirror {function} {message['request_id']}: skipped: the copy of its event and the "
        f"cloud's result would be {size:,} bytes, over the {limits.FRAME_LIMIT // 1024} KB one "
        "post to this connection may carry (API Gateway's frame quota), so the shim sent none; "
        "the cloud answered the caller as usual and nothing ran here"
    )


def foreign_line(message: dict[str, Any], session_id: str) -> str:
    """The line for another session's mirror (not run; console markup)."""
    return escape(
        f"refused the mirror of request {message['request_id']} of {message['function_name']}: "
        f"it is for session {message['session_id']}, not this session {session_id}; not run. "
        "Something posted another session's mirror to this session's connection: report it, "
        "with this request id, to whoever runs the helper stack"
    )


# --- Capture ---------------------------------------------------------------------------------


def keep(function: LocalFunction | None, message: dict[str, Any], local: runner.Outcome,
         seconds: float, age_ms: int, same: bool, finished_at: float | None = None) -> Path | None:
    """Write the capture of the mirror ``message`` (redirecting variables already dropped)
    when attach captures (``records.start``): the record ``records.build_record`` makes, with
    the CLOUD's result as its outcome, the time the cloud gave the invocation as its
    ``deadline_left_ms``, the local run's duration, and ``"mirror": {"same", "local",
    "cloud_age_ms"}`` (``local``: ``ok`` or the local error's type, never its values).
    Blocking: call it off the event loop. A failure is a warning, as for any capture."""
    writer = records.active()
    calls = records.take_calls(message["request_id"])
    if writer is None or function is None:
        return None
    finished_at = time.time() if finished_at is None else finished_at
    options = writer.options
    try:
        invocation = local_invocation(message, finished_at - seconds)
        record = records.build_record(function, invocation, cloud_outcome(message["cloud"]), seconds,
                                      finished_at, options.redact, options.keep_secrets, calls)
        record["context"]["deadline_left_ms"] = message["remaining_ms"]
        record[RECORD_MARK] = {
            "same": same,
            "local": "ok" if local.ok else str((local.error or {}).get("errorType") or "error"),
            "cloud_age_ms": age_ms,
        }
        return records.write_record(options.folder, record, options.max_records)
    except Exception as exc:  # noqa: BLE001 - a lost capture must never stop attach
        log.warning("%s: mirror not captured (%s)", message["request_id"], exc)
        return None
