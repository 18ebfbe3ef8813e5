"""`plldb events import`: events from where production failures are, kept as captures.

A failed message waits in an SQS dead-letter queue; an event that went wrong is in an
EventBridge archive, or in the function's log when Powertools' Logger logged it
(``log_event=True``). Each becomes a record (format 1) that ``plldb replay`` runs like a
capture: ``imported`` says where it came from and there is no outcome to compare (nor AWS
calls: its replay calls AWS, with ``--credentials``).

Reading a queue never deletes: messages are received with a visibility timeout
(:data:`HIDE_SECONDS`, so each receive returns others) and made visible again at once
afterwards (``ChangeMessageVisibility`` to 0), even when the import fails half-way; if plldb
dies in between, they come back when the timeout ends. Each message is wrapped as the SQS
event Lambda would deliver for it (one record).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from plldb.capture import records, secrets
from plldb.project.model import LocalFunction

HIDE_SECONDS = 30  # while plldb reads; made visible again right after
MAX_MESSAGES = 10  # per ReceiveMessage (SQS's limit)


class NotEvents(records.CaptureError):
    """The source cannot be read as events (the text says why and what is accepted)."""


def record_of(function: LocalFunction, event: Any, source: dict[str, Any], keep_secrets: bool = False) -> dict[str, Any]:
    """A record of ``event`` for ``function``, with no outcome: ``imported`` is ``source``."""
    now = datetime.now(timezone.utc)
    text = json.dumps(event)
    return {
        "format": records.FORMAT,
        "id": uuid.uuid4().hex,
        "function": function.logical_id,
        "function_name": function.logical_id,
        "captured_at": now.isoformat(timespec="microseconds"),
        "code_version": records.code_version(function),
        "event": event if keep_secrets else secrets.redact_secrets(event),
        "event_is_text": False,
        "event_bytes": len(text.encode()),
        "context": {"request_id": str(uuid.uuid4()), "invoked_function_arn": None, "deadline_left_ms": None,
                    "client_context": None, "cognito_identity": None, "tenant_id": None},
        "environment": {},
        "environment_left_out": [],
        "outcome": None,
        "duration_ms": None,
        "redacted": [],
        "secrets_redacted": not keep_secrets,
        "imported": source,
    }


# --- SQS dead-letter queue ---------------------------------------------------------------------


def sqs_events(sqs: Any, queue: str, limit: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Up to ``limit`` messages of ``queue`` (a URL or a name), each as ``(SQS event,
    source)``; none deleted, all visible again when this returns."""
    url = queue if queue.startswith(("https://", "http://")) else sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    try:
        while len(seen) < limit:
            batch = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=min(MAX_MESSAGES, limit - len(seen)), VisibilityTimeout=HIDE_SECONDS,
                WaitTimeSeconds=0, AttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])
            handles += [m["ReceiptHandle"] for m in batch]
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                break
            seen.update((m["MessageId"], m) for m in fresh)
    finally:
        _show_again(sqs, url, handles)
    region = arn.split(":")[3]
    return [({"Records": [sqs_record(m, arn, region)]},
             {"from": "sqs-dlq", "queue": url, "message_id": m["MessageId"]}) for m in seen.values()]


def _show_again(sqs: Any, url: str, handles: list[str]) -> None:
    """Every received message visible again (in batches of 10, SQS's limit)."""
    for start in range(0, len(handles), MAX_MESSAGES):
        entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                   for i, h in enumerate(handles[start:start + MAX_MESSAGES])]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


def sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    """One message as a record of the event Lambda's SQS poller delivers."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {name: _attribute(value) for name, value in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda spells it (camelCase, binary as base64)."""
    binary = value.get("BinaryValue")
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": [base64.b64encode(b).decode() for b in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }


# --- Files -------------------------------------------------------------------------------------

ACCEPTED = ("an EventBridge event (JSON with source and detail-type), an array of them or one a line "
            "(an archive or replay export), or CloudWatch Logs lines holding a Powertools log_event")


def file_events(path: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The events of ``path``, each as ``(event, source)``: see :data:`ACCEPTED`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotEvents(f"--from-file {path}: cannot read it ({exc.strerror or exc})") from None
    found = []
    for number, item in _json_items(text):
        event, kind = _event_of(item)
        if event is None:
            continue
        found.append((event, {"from": kind, "file": path.name, "line": number}))
    if not found:
        raise NotEvents(f"--from-file {path}: no event found; give {ACCEPTED}")
    return found


def _json_items(text: str) -> list[tuple[int, Any]]:
    """The whole text as JSON (an array gives its items), else each line's JSON: a log line's
    JSON starts at its first ``{`` (after the timestamp and request id of CloudWatch's text)."""
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if whole is not None:
        return list(enumerate(whole if isinstance(whole, list) else [whole], 1))
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        start = line.find("{")
        if start < 0:
            continue
        try:
            items.append((number, json.loads(line[start:])))
        except ValueError:
            continue
    return items


def _event_of(item: Any) -> tuple[Any, str]:
    """The event an item holds, and what kind of item it was (None: not one)."""
    if not isinstance(item, dict):
        return None, ""
    if "detail-type" in item and "source" in item:
        return item, "eventbridge"
    if {"level", "message", "service"} <= item.keys() and isinstance(item["message"], (dict, list)):
        return item["message"], "powertools-log"
    return None, ""
