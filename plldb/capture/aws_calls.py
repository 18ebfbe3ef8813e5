"""The AWS calls of each captured invocation: recorded under attach, answered in a replay.

:mod:`plldb.capture.aws_wire` sees every botocore call and asks :func:`current` which
:class:`Tape` it belongs to. The answer is the invocation the calling thread works for:
:mod:`plldb.local.binding` already hands a worker thread's binding (its invocation's output
object) to every thread the handler starts, so calls from a handler's thread pool or S3
transfer threads are attributed to the right invocation, and two functions running at once
in one process never mix their calls. Threads that are not bound (plldb's own: the
connection, payload transfers, the capture writer) have no tape: plldb's calls are never
recorded. A contextvar would not do: threads do not inherit context before Python 3.14.

:class:`Recorder` is the executor's invocation hook (:func:`plldb.local.executor.add_hook`):
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
from plldb.local import binding, executor
from plldb.project.model import LocalFunction

KEPT_TAPES = 1000  # finished tapes waiting for their record; beyond, the oldest are dropped
INIT, INVOKE = "init", "invoke"


class Tape:
    """One invocation's calls (an :class:`aws_wire.Tap`); with a ``player``, each call is
    answered from a record instead of going to AWS, and what could not be is kept in
    ``missed``."""

    def __init__(self, keep_secrets: bool = False, redact_paths: tuple[tuple[str, ...], ...] = (),
                 player: aws_wire.Player | None = None) -> None:
        self.keep_secrets = keep_secrets
        self.redact_paths = redact_paths
        self.player = player
        self.phase = INVOKE
        self.calls: list[dict[str, Any]] = []
        self.http_calls: list[dict[str, str]] = []
        self.missed: list[str] = []
        self._lock = threading.Lock()

    def begin(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        entry = {"service": service, "operation": operation, "phase": self.phase,
                 "params": aws_wire.normal_params(params, self.keep_secrets, self.redact_paths)}
        with self._lock:
            self.calls.append(entry)
        return entry

    def answer(self, entry: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if self.player is None:
            return None
        try:
            recorded = self.player.answer(entry)
            if "error" in recorded:
                entry["error"] = recorded["error"]
                aws_wire.raise_error(recorded["error"])
            return recorded["status"], aws_wire.decode_response(recorded["response"])
        except aws_wire.UnanswerableCall as exc:
            with self._lock:
                self.missed.append(str(exc))
            raise

    def finish(self, entry: dict[str, Any], status: int, parsed: dict[str, Any]) -> None:
        entry["status"] = status
        if self.player is None:  # a replay's calls are compared by their parameters only
            response = aws_wire.snapshot_response(parsed)
            entry["response"] = aws_wire.private(response, self.keep_secrets, self.redact_paths)

    def fail(self, entry: dict[str, Any], exc: BaseException) -> None:
        entry["error"] = aws_wire.encode_error(exc)

    def listed_http(self, method: str, host: str, path: str) -> None:
        with self._lock:
            self.http_calls.append({"method": method, "host": host, "path": path.split("?", 1)[0]})

    def snapshot(self) -> list[dict[str, Any]]:
        """The calls so far; one still waiting for its answer is marked unfinished."""
        with self._lock:
            calls = [dict(c) for c in self.calls]
        for call in calls:
            if "status" not in call and "error" not in call:
                call["error"] = {"type": "Unfinished", "module": "plldb", "kwargs": None,
                                 "message": "the call had no answer when the invocation was answered"}
        return calls


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
    tape = None if getattr(aws_wire._local, "busy", False) else current()
    if tape is not None:
        tape.listed_http(method, f"{self.host}:{self.port}", url)
    return _original_putrequest(self, method, url, *args, **kwargs)


def start(recorder: Recorder) -> None:
    """Give every invocation from now on a tape (until :func:`stop`)."""
    aws_wire.install(current)
    http.client.HTTPConnection.putrequest = _putrequest  # type: ignore[method-assign]
    executor.add_hook(recorder)


def stop(recorder: Recorder) -> None:
    executor.remove_hook(recorder)
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
