"""The AWS calls of each captured invocation: recorded under attach, answered in a replay.

:mod:`plldb.capture.aws_wire` sees every botocore call and asks :func:`current` which
:class:`Tape` it belongs to. The answer is the invocation the calling thread works for:
:mod:`plldb.local.binding` already hands a worker thread's binding (its invocation's output
object) to every thread the handler starts, so calls from a handler's thread pool or S3
transfer threads are attributed to the right invocation, and two functions running at once
in one process never mix their calls. Threads that are not bound (plldb's own: the
connection, payload transfers, the capture writer) have no tape: plldb's calls are never
recorded. A contextvar would not do: threads do not inherit context before Python 3.14.

:class:`Recorder` is the executor's invocation hook (:func:`plldb.local.invocation_hooks.add_hook`):
each invocation gets a tape while it runs, calls made while the function's modules load
are marked ``init`` and kept per function, and every record of that function carries the
last load's calls, since a replay always loads the modules again. Plain HTTP requests of
the handler to other hosts (``http.client``, under ``requests`` and ``urllib3`` too) are
listed by method, host and path, never their content.
"""

from __future__ import annotations

import collections
import difflib
import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from plldb.capture import aws_wire
from plldb.local import binding, invocation_hooks
from plldb.project.model import LocalFunction

KEPT_TAPES = 1000  # finished tapes waiting for their record; beyond, the oldest are dropped
INIT, INVOKE = aws_wire.INIT, aws_wire.INVOKE


Tape = aws_wire.Tape

_tapes: dict[Any, Tape] = {}  # an invocation's output object (binding) -> its tape


def current() -> Tape | None:
    """The tape of the invocation the calling thread works for, if it has one."""
    output = binding.bound_output()
    return None if output is None else _tapes.get(output)


class Recorder:
    """The executor hook that gives each invocation a tape (attach's capture, or a replay)."""

    def __init__(self, new_tape: Any) -> None:
        self.new_tape = new_tape  # () -> Tape
        self.init_calls: dict[str, list[dict[str, Any]]] = {}  # function -> its last load's calls
        self._finished: collections.OrderedDict[str, tuple[Tape, list]] = collections.OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def running(self, function: LocalFunction, invocation: dict[str, Any]) -> Iterator[None]:
        tape, output = self.new_tape(), binding.bound_output()
        _tapes[output] = tape
        try:
            yield
        finally:
            _tapes.pop(output, None)
            init = [] if any(c["phase"] == INIT for c in tape.calls) else self.init_calls.get(function.logical_id, [])
            with self._lock:
                self._finished[invocation["request_id"]] = (tape, init)
                while len(self._finished) > KEPT_TAPES:
                    self._finished.popitem(last=False)

    @contextmanager
    def loading(self, function: LocalFunction) -> Iterator[None]:
        tape = current()
        if tape is None:
            yield
            return
        tape.phase = INIT
        try:
            yield
        finally:
            tape.phase = INVOKE
            self.init_calls[function.logical_id] = [c for c in tape.snapshot() if c["phase"] == INIT]

    def take(self, request_id: str) -> dict[str, Any]:
        """The record fields of a finished invocation: its calls (the last load's first) and
        the plain HTTP requests it made; empty when it was not recorded."""
        with self._lock:
            finished = self._finished.pop(request_id, None)
        if finished is None:
            return {}
        tape, init = finished
        return {"aws_calls": [*init, *tape.snapshot()], "http_calls": list(tape.http_calls)}


_original_putrequest = http.client.HTTPConnection.putrequest


def _putrequest(self: http.client.HTTPConnection, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
    """List a plain HTTP request of a handler (botocore's own are calls, not listed)."""
    tape = None if aws_wire.in_call() else current()
    if tape is not None:
        tape.listed_http(method, f"{self.host}:{self.port}", url)
    return _original_putrequest(self, method, url, *args, **kwargs)


def start(recorder: Recorder) -> None:
    """Give every invocation from now on a tape (until :func:`stop`)."""
    aws_wire.install(current)
    http.client.HTTPConnection.putrequest = _putrequest  # type: ignore[method-assign]
    invocation_hooks.add_hook(recorder)


def stop(recorder: Recorder) -> None:
    invocation_hooks.remove_hook(recorder)
    http.client.HTTPConnection.putrequest = _original_putrequest  # type: ignore[method-assign]
    aws_wire.uninstall()


@contextmanager
def replaying(record: dict[str, Any], offline: bool) -> Iterator[Tape]:
    """During the block, the invocation run gets one tape, answering from ``record``'s
    calls when ``offline``, normalizing as the capture did (its redaction settings)."""
    paths = tuple(tuple(p.split(".")) for p in record.get("redacted", []))  # records joins the parts
    player = aws_wire.Player(record.get("aws_calls", [])) if offline else None
    tape = Tape(not record.get("secrets_redacted", True), paths, player)
    recorder = Recorder(lambda: tape)
    start(recorder)
    try:
        yield tape
    finally:
        stop(recorder)


# --- What changed -----------------------------------------------------------------------------


def calls_difference(recorded: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[str]:
    """Lines saying which calls were added, removed or made with other parameters (empty
    when the replay made the recorded calls, in the recorded order within each phase)."""
    before, after = [_key(c) for c in recorded], [_key(c) for c in now]
    lines: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        old, new = recorded[i1:i2], now[j1:j2]
        while old and new and _op(old[0]) == _op(new[0]):
            lines += _changed(old.pop(0), new.pop(0))
        lines += [f"- removed: {aws_wire.call_name(c)}" for c in old]
        lines += [f"+ added: {aws_wire.call_name(c)}" for c in new]
    return lines


def _key(call: dict[str, Any]) -> tuple[str, str, str, str]:
    return (call.get("phase", INVOKE), *aws_wire.call_key(call))


def _op(call: dict[str, Any]) -> tuple[str, str, str]:
    return call.get("phase", INVOKE), call["service"], call["operation"]


def _changed(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    head = f"~ different parameters: {old['service']}:{old['operation']}"
    diff = difflib.unified_diff(_pretty(old["params"]), _pretty(new["params"]), "recorded", "now",
                                lineterm="", n=1)
    return [head, *(f"    {line}" for line in list(diff)[2:])]


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
