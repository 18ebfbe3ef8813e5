"""Run a captured invocation with plain pytest: the runtime of tests `plldb events export` writes.

An exported test must run where plldb is not installed (a fresh virtualenv with pytest and the
project's requirements), with no credentials and no network. So the exporter copies this
module, :mod:`aws_wire`, :mod:`aws_values` and :mod:`secrets` into a package beside the test
(``plldb_hermetic/``), and they import only the standard library, botocore and each other.

:func:`check` loads the function's handler from its folders (as Lambda does: the code folder
and layers on ``sys.path``, the code folder as the working directory), sets the captured
environment with no credentials and no AWS configuration, answers every AWS call from the
capture, calls the handler with the captured event and a context of the captured fields, and
says what differs from the capture: the result (or error type and message), the AWS calls.
This is a simpler runner than plldb's executor (one function at a time, no module isolation
beyond a fresh import), which is enough for a regression test.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import aws_wire  # relative: this package is copied beside the exported test

# What the handler must not find: your AWS configuration and credentials, endpoints, proxies
# of this machine. No credentials are needed: every call is answered before it is signed.
HIDDEN_PREFIXES = ("AWS_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
NO_AWS = {
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
COMPARED_ERROR_KEYS = ("errorType", "errorMessage")


class Context:
    """The Lambda context's fields, as captured."""

    def __init__(self, capture: dict[str, Any]) -> None:
        context, env = capture["context"], capture.get("environment", {})
        self.aws_request_id = context["request_id"]
        self.invoked_function_arn = context.get("invoked_function_arn")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME", capture["function"])
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.client_context = _json(context.get("client_context"))
        self.identity = _json(context.get("cognito_identity"))
        self.tenant_id = context.get("tenant_id")
        self._deadline = time.monotonic() + (context.get("deadline_left_ms") or 3000) / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def check(capture: dict[str, Any], here: Path) -> list[str]:
    """What differs between ``capture`` and a run of the function now (empty: nothing);
    ``here`` is the folder the capture's ``exported`` paths are relative to."""
    exported = capture["exported"]
    tape = aws_wire.Tape(not capture.get("secrets_redacted", True),
                         tuple(tuple(p.split(".")) for p in capture.get("redacted", [])),
                         aws_wire.Player(capture.get("aws_calls") or []))
    folders = [str((here / p).resolve()) for p in exported["import_path"]]
    environment = {**exported.get("template_environment", {}), **capture.get("environment", {})}
    with _environment(environment), _imports(folders), _answering(tape), \
            _working_dir(folders[0]):
        outcome = _run(exported["handler"], capture, tape)
    problems = [*tape.missed, *_outcome_difference(capture["outcome"], outcome)]
    changed = _calls_difference(capture.get("aws_calls") or [], tape.snapshot())
    return problems + (["AWS calls changed:", *changed] if changed else [])


def _run(handler: str, capture: dict[str, Any], tape: aws_wire.Tape) -> dict[str, Any]:
    module_name, _, name = handler.rpartition(".")
    try:
        tape.phase = aws_wire.INIT
        module = importlib.import_module(module_name)
        tape.phase = aws_wire.INVOKE
        event = capture["event"] if capture.get("event_is_text") else json.loads(json.dumps(capture["event"]))
        result = getattr(module, name)(event, Context(capture))
        return {"ok": True, "result": json.loads(json.dumps(result))}
    except Exception as exc:  # noqa: BLE001 - the handler's error is the outcome
        return {"ok": False, "error": {"errorType": type(exc).__name__, "errorMessage": str(exc)}}


def _outcome_difference(captured: dict[str, Any] | None, now: dict[str, Any]) -> list[str]:
    """The diff of the outcomes; for an imported event (no outcome), the error if it failed."""
    if captured is None:
        return [] if now["ok"] else [f"the handler failed: {now['error']['errorType']}: {now['error']['errorMessage']}"]
    before, after = _comparable(captured), _comparable(now)
    if before == after:
        return []
    return list(difflib.unified_diff(_lines(before), _lines(after), "captured", "now", lineterm="", n=2))


def _comparable(outcome: dict[str, Any]) -> dict[str, Any]:
    if outcome["ok"]:
        return {"result": outcome["result"]}
    return {"error": {k: outcome["error"].get(k) for k in COMPARED_ERROR_KEYS}}


def _lines(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def _calls_difference(recorded: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[str]:
    before = [(c.get("phase"), *aws_wire.call_key(c)) for c in recorded]
    after = [(c.get("phase"), *aws_wire.call_key(c)) for c in now]
    lines = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag != "equal":
            lines += [f"- {aws_wire.call_name(c)}" for c in recorded[i1:i2]]
            lines += [f"+ {aws_wire.call_name(c)}" for c in now[j1:j2]]
    return lines


@contextlib.contextmanager
def _environment(captured: dict[str, str]) -> Iterator[None]:
    """The captured variables, and nothing of this machine's AWS setup (no credentials)."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith(HIDDEN_PREFIXES)]:
        del os.environ[name]
    os.environ.update({k: v for k, v in captured.items() if not k.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE"))})
    os.environ.update(NO_AWS)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _imports(folders: list[str]) -> Iterator[None]:
    """The function's folders first on ``sys.path``; modules imported from them are
    forgotten afterwards (the next capture loads them afresh, as a cold start)."""
    before = set(sys.modules)
    sys.path[:0] = folders
    try:
        yield
    finally:
        del sys.path[:len(folders)]
        for name in set(sys.modules) - before:
            path = getattr(sys.modules[name], "__file__", None) or ""
            if any(path.startswith(folder) for folder in folders):
                del sys.modules[name]


@contextlib.contextmanager
def _answering(tape: aws_wire.Tape) -> Iterator[None]:
    aws_wire.install(lambda: tape)
    try:
        yield
    finally:
        aws_wire.uninstall()


@contextlib.contextmanager
def _working_dir(folder: str) -> Iterator[None]:
    saved = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(saved)
