"""Capture: every invocation `plldb attach` serves, kept as a record under ``.plldb/``.

A record (format 1, docs/requirements/capture-and-replay.md) holds the event, the context
fields, the function's environment without credentials or secret-looking variables, the
outcome and duration, and a hash of the function's source files. Records are written by one
background thread (:class:`CaptureWriter`): the hook :func:`keep`, called where attach prints
an invocation, only queues, so capturing never delays an answer. Files are the owner's alone
(0600 in a 0700 folder), the folder ignores itself in git, fields named by
``--capture-redact`` are blanked before anything is written, and each function keeps at most
``max_records`` records (the oldest are pruned).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from plldb.capture import aws_calls, secrets
from plldb.capture.secrets import redact  # noqa: F401 - part of this module's interface
from plldb.local.debuggers import plldb_thread
from plldb.local.executor import CONTAINER_ONLY_ENV
from plldb.naming import without_secrets
from plldb.project.model import BUILD_DIR, LocalFunction

log = logging.getLogger(__name__)

FORMAT = 1
FOLDER_NAME = ".plldb"
RECORDS_FOLDER = "captures"
DEFAULT_MAX_RECORDS = 50
QUEUE_LIMIT = 1000  # invocations waiting to be written; beyond, one is dropped with a warning
REDACTED = "[redacted]"
SHORT_ID = 8
MIN_ID_PREFIX = 4
# Names of variables that look like they hold a secret: never written, even when not credentials.
SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSW|PASSPHRASE|PRIVATE|CREDENTIAL|API_?KEY|ACCESS_?KEY|AUTH|SIGNING|COOKIE|SALT",
    re.IGNORECASE,
)
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")
_PATH = re.compile(r"[^.\[\]]+(?:\.[^.\[\]]+|\[(?:\d+|\*)\])*")


class CaptureError(Exception):
    """The capture folder cannot be used, or a record asked for is not there."""


@dataclass(frozen=True)
class CaptureOptions:
    folder: Path  # the .plldb folder
    max_records: int = DEFAULT_MAX_RECORDS
    redact: tuple[tuple[str, ...], ...] = ()  # parsed --capture-redact paths
    keep_secrets: bool = False  # --capture-keep-secrets: no default redaction (secrets.py)


# --- Where ----------------------------------------------------------------------------------


def project_dir(template: Path) -> Path:
    """The SAM project's folder: the template's, or three up from ``.aws-sam/build``."""
    folder = Path(template).resolve().parent
    if folder.name == BUILD_DIR.name and folder.parent.name == BUILD_DIR.parent.name:
        return folder.parent.parent
    return folder


def capture_dir(template: Path) -> Path:
    return project_dir(template) / FOLDER_NAME


def prepare_folder(folder: Path) -> None:
    """Create ``folder`` (0700) with a ``.gitignore`` ignoring everything, and check that
    records can be written there; a folder that cannot is an error now, not a lost capture later."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# plldb captures: never committed (they hold real events)\n*\n")
        (folder / RECORDS_FOLDER).mkdir(mode=0o700, exist_ok=True)
        probe = folder / RECORDS_FOLDER / f".probe-{uuid.uuid4().hex}"
        _write_private(probe, "")
        probe.unlink()
    except OSError as exc:
        raise CaptureError(
            f"cannot write captures to {folder} ({exc.strerror or exc}): fix the folder's "
            "permissions, or attach with --no-capture"
        ) from exc


def _write_private(path: Path, text: str, replace: bool = False) -> None:
    """Write a file only its owner can read (created 0600, never another mode first); with
    ``replace``, an existing file is overwritten and made 0600 before anything is written."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if replace else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)


def write_owner_only(path: Path, text: str) -> None:
    """Write (or overwrite) ``path`` readable by its owner only: for files holding captured data."""
    _write_private(path, text, replace=True)


# --- What -----------------------------------------------------------------------------------


def parse_path(text: str) -> tuple[str, ...]:
    """``headers.Authorization``, ``Records[*].body`` or ``Records[0].s3`` as its parts
    (``*`` matches every key or item); anything else is a clear error."""
    if not _PATH.fullmatch(text):
        raise CaptureError(
            f"--capture-redact {text!r} is not a field path: use dots and [index] or [*], "
            "e.g. headers.Authorization or Records[*].body"
        )
    return tuple(match.group(1) or match.group(2) for match in _PATH_PART.finditer(text))


def safe_environment(environment: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The function's variables fit to write down, and the names left out as secrets.

    Credentials and secret-looking names are left out; container-only variables (the
    shim's, PATH and the like) mean nothing locally and are dropped silently.
    """
    variables = {k: str(v) for k, v in without_secrets(environment).items() if k not in CONTAINER_ONLY_ENV}
    dropped = sorted(k for k in environment if k not in variables and k not in CONTAINER_ONLY_ENV)
    dropped += sorted(k for k in variables if SECRET_NAME.search(k))
    return {k: v for k, v in variables.items() if not SECRET_NAME.search(k)}, dropped


def code_version(function: LocalFunction) -> str:
    """A hash of the function's own Python sources (not its installed packages): a replay
    shows when the code changed since the capture."""
    digest = hashlib.sha256()
    for folder in (p for p in function.import_path if p not in function.package_dirs):
        for path in sorted(_sources(Path(folder))):
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _sources(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "site-packages")]
        found += [Path(root) / name for name in files if name.endswith(".py")]
    return found


def _json_or_text(text: str) -> tuple[Any, bool]:
    try:
        return json.loads(text), False
    except ValueError:
        return text, True


def build_record(function: LocalFunction, invocation: dict[str, Any], outcome: Any, seconds: float,
                 finished_at: float, redact_paths: tuple[tuple[str, ...], ...] = (),
                 keep_secrets: bool = False, calls: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of one answered invocation (format 1), redacted: the well-known secret
    fields unless ``keep_secrets`` (:mod:`plldb.capture.secrets`), and ``redact_paths``.
    ``calls`` are the AWS calls it made (``aws_calls``, ``http_calls``: already fit to write
    down, :mod:`plldb.capture.aws_calls`); absent when they were not recorded."""
    event, event_is_text = _json_or_text(invocation["event"])
    environment, dropped = safe_environment(invocation.get("environment") or {})
    received_ms = (finished_at - seconds) * 1000
    if outcome.ok:
        result, result_is_text = _json_or_text(outcome.body.decode(errors="replace"))
        answer = {"ok": True, "result": result, "result_is_text": result_is_text}
    else:
        answer = {"ok": False, "error": outcome.error}
    if not keep_secrets:
        event = secrets.redact_secrets(event)
        if answer["ok"]:
            answer["result"] = secrets.redact_secrets(answer["result"])
    for path in redact_paths:
        event = redact(event, path)
        if answer["ok"]:
            answer["result"] = redact(answer["result"], path)
    return {
        "format": FORMAT,
        "id": uuid.uuid4().hex,
        "function": function.logical_id,
        "function_name": invocation["function_name"],
        "captured_at": datetime.fromtimestamp(finished_at, timezone.utc).isoformat(timespec="microseconds"),
        "code_version": code_version(function),
        "event": event,
        "event_is_text": event_is_text,
        "event_bytes": len(invocation["event"].encode()),
        "context": {
            "request_id": invocation["request_id"],
            "invoked_function_arn": invocation.get("invoked_function_arn"),
            "deadline_left_ms": max(0, int(invocation["deadline_ms"] - received_ms)),
            "client_context": invocation.get("client_context"),
            "cognito_identity": invocation.get("cognito_identity"),
            "tenant_id": invocation.get("tenant_id"),
        },
        "environment": environment,
        "environment_left_out": dropped,
        "outcome": answer,
        "duration_ms": round(seconds * 1000, 1),
        "redacted": [".".join(path) for path in redact_paths],
        "secrets_redacted": not keep_secrets,
        **(calls or {}),
    }


# --- Writing --------------------------------------------------------------------------------


def function_folder(folder: Path, logical_id: str) -> Path:
    """One folder per function (a nested stack's ``App/Function`` becomes ``App~Function``)."""
    return folder / RECORDS_FOLDER / logical_id.replace("/", "~")


def write_record(folder: Path, record: dict[str, Any], max_records: int) -> Path:
    """Write ``record`` (whole, or not at all: a reader never sees half a file) and prune."""
    target_dir = function_folder(folder, record["function"])
    target_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = record["captured_at"].replace(":", "").replace("-", "").replace("+0000", "Z")
    target = target_dir / f"{stamp}-{record['id'][:SHORT_ID]}.json"
    partial = target_dir / f".{target.name}.partial"
    _write_private(partial, json.dumps(record, indent=1, ensure_ascii=False))
    os.replace(partial, target)
    prune(target_dir, max_records)
    return target


def prune(target_dir: Path, max_records: int) -> list[Path]:
    """Delete the oldest records beyond ``max_records`` (names sort by capture time)."""
    records = sorted(target_dir.glob("*.json"))
    removed = records[: max(0, len(records) - max_records)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


class CaptureWriter:
    """Builds and writes records on one background thread, in the order they were answered."""

    def __init__(self, options: CaptureOptions) -> None:
        prepare_folder(options.folder)
        self.options = options
        self.written = 0
        self._queue: queue.Queue[tuple | None] = queue.Queue(QUEUE_LIMIT)
        self._thread = plldb_thread(self._drain, "plldb-capture")
        self._thread.start()

    def submit(self, function: LocalFunction, invocation: dict[str, Any], outcome: Any, seconds: float,
               calls: dict[str, Any] | None = None) -> None:
        """Queue one answered invocation (with its AWS calls, if recorded); never blocks."""
        try:
            self._queue.put_nowait((function, invocation, outcome, seconds, time.time(), calls))
        except queue.Full:
            log.warning("%s: not captured, %d records are still waiting to be written",
                        invocation["request_id"], QUEUE_LIMIT)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to ``timeout`` seconds), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            function, invocation, outcome, seconds, finished_at, calls = item
            try:
                record = build_record(function, invocation, outcome, seconds, finished_at,
                                      self.options.redact, self.options.keep_secrets, calls)
                write_record(self.options.folder, record, self.options.max_records)
                self.written += 1
            except Exception as exc:  # noqa: BLE001 - a lost capture must never stop the others
                log.warning("%s: not captured (%s)", invocation["request_id"], exc)


_writer: CaptureWriter | None = None
_recorder: aws_calls.Recorder | None = None


def start(options: CaptureOptions) -> CaptureWriter:
    """Capture every invocation attach answers from now on, with the AWS calls its handler
    makes (until :func:`stop`)."""
    global _writer, _recorder
    _writer = CaptureWriter(options)
    _recorder = aws_calls.Recorder(lambda: aws_calls.Tape(options.keep_secrets, options.redact))
    aws_calls.start(_recorder)
    return _writer


def keep(function: LocalFunction | None, invocation: dict[str, Any], outcome: Any, seconds: float) -> None:
    """The hook attach calls once an invocation is answered: queue it, if capturing."""
    if _writer is not None and function is not None:
        _writer.submit(function, invocation, outcome, seconds, take_calls(invocation["request_id"]))


def active() -> CaptureWriter | None:
    """The capture attach started, if any (a mirror writes its own record through it)."""
    return _writer


def take_calls(request_id: str) -> dict[str, Any] | None:
    """The AWS calls recorded for ``request_id``'s local run, handed over once."""
    return _recorder.take(request_id) if _recorder is not None else None


def stop() -> None:
    """Write what is left and stop capturing."""
    global _writer, _recorder
    if _recorder is not None:
        aws_calls.stop(_recorder)
        _recorder = None
    if _writer is not None:
        _writer.close()
        _writer = None


# --- Reading --------------------------------------------------------------------------------


def load_records(folder: Path, function: str | None = None) -> list[dict[str, Any]]:
    """Every readable record (oldest first), or those of one function; newer formats than
    this plldb knows are skipped with a warning."""
    pattern = f"{function.replace('/', '~') if function else '*'}/*.json"
    records = []
    for path in (folder / RECORDS_FOLDER).glob(pattern):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s: not a readable capture (%s)", path, exc)
            continue
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            log.warning("%s: capture format %s is not one this plldb reads (%d)", path,
                        record.get("format") if isinstance(record, dict) else "?", FORMAT)
            continue
        records.append(record)
    return sorted(records, key=lambda r: r["captured_at"])


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """One line of `plldb events`: when, what, how it went, how long, how big, which id."""
    outcome = record["outcome"]
    captured = datetime.fromisoformat(record["captured_at"])
    return {
        "id": record["id"],
        "short_id": record["id"][:SHORT_ID],
        "captured_at": record["captured_at"],
        "time": captured.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
        "function": record["function"],
        "outcome": ("imported" if outcome is None else "ok" if outcome["ok"]
                    else str(outcome["error"].get("errorType") or "error")),
        "duration_ms": record["duration_ms"],
        "event_bytes": record["event_bytes"],
        "code_version": record["code_version"],
    }


def find_record(folder: Path, wanted: str) -> dict[str, Any]:
    """The record whose id starts with ``wanted`` (at least 4 characters, unambiguous)."""
    if len(wanted) < MIN_ID_PREFIX:
        raise CaptureError(f"capture id {wanted!r} is too short: give at least {MIN_ID_PREFIX} characters")
    matches = [r for r in load_records(folder) if r["id"].startswith(wanted.lower())]
    if len(matches) > 1:
        raise CaptureError(
            f"capture id {wanted!r} is ambiguous ({len(matches)} captures start with it): "
            "give more of it (see plldb events)"
        )
    if not matches:
        raise CaptureError(f"no capture {wanted!r} in {folder}: run plldb events to list the captures")
    return matches[0]
