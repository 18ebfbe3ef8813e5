"""`plldb events import` (issue 23): events from a dead-letter queue (a real moto server) or
a file (an EventBridge export, CloudWatch Logs lines a real Powertools Logger wrote) become
captures that `plldb replay` runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from plldb.capture import records
from tests.harness.moto_server import MotoServer
from tests.test_hermetic import run_exported
from tests.test_invoke import plldb

TEMPLATE = """AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: worker/
      Handler: app.handler
      Runtime: python3.11
"""
HANDLER = '''def handler(event, context):
    if "Records" in event:
        body = event["Records"][0]["body"]
        if body == "poison":
            raise ValueError("cannot process poison")
        return {"source": event["Records"][0]["eventSource"], "body": body}
    return {"source": event.get("source"), "detail": event.get("detail")}
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "worker").mkdir()
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "worker" / "app.py").write_text(HANDLER)
    return tmp_path


def imported(project: Path) -> list[dict[str, Any]]:
    return records.load_records(project / ".plldb")


def test_a_dead_letter_queue_is_read_without_deleting_and_replayed(aws: MotoServer, project: Path) -> None:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="orders-dlq")["QueueUrl"]
    bodies = [f"order-{n}" for n in range(11)] + ["poison"]
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body,
                         MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"}})
    result = plldb(["events", "import", "Worker", "--sqs-dlq", "orders-dlq"], project, env=aws.environment())
    assert result.returncode == 0, result.stderr
    assert "kept 12 event(s) of queue orders-dlq as captures of Worker" in result.stdout
    kept = imported(project)
    assert sorted(r["event"]["Records"][0]["body"] for r in kept) == sorted(bodies), "more than one receive's 10"
    record = kept[0]["event"]["Records"][0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":orders-dlq")
    assert record["messageAttributes"]["kind"] == {"stringValue": "order", "binaryValue": None, "stringListValues": [],
                                                   "binaryListValues": [], "dataType": "String"}
    assert all(r["imported"]["from"] == "sqs-dlq" and r["outcome"] is None for r in kept)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "12", "none deleted, all visible again"
    listing = plldb(["events", "Worker"], project)
    assert listing.stdout.count("imported") >= 12
    poison = next(r for r in kept if r["event"]["Records"][0]["body"] == "poison")
    failed = plldb(["replay", poison["id"][:8], "--credentials", "none"], project)
    assert failed.returncode == 1
    assert (f"{poison['id'][:8]} Worker: failed (imported from sqs-dlq): ValueError: cannot process poison"
            in " ".join(failed.stdout.split()))
    (project / "worker" / "app.py").write_text(HANDLER.replace('raise ValueError("cannot process poison")', "pass"))
    fixed = plldb(["replay", poison["id"][:8], "--credentials", "none"], project)
    assert fixed.returncode == 0 and f"{poison['id'][:8]} Worker: ran ok (imported from sqs-dlq)" in fixed.stdout


def test_a_queue_that_cannot_be_read_is_one_clear_line(aws: MotoServer, project: Path) -> None:
    result = plldb(["events", "import", "Worker", "--sqs-dlq", "no-such-queue"], project, env=aws.environment())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--sqs-dlq no-such-queue: cannot read the queue (AWS.SimpleQueueService.NonExistentQueue" in \
        " ".join(result.stderr.split())


POWERTOOLS_LOGGER = """
import json, sys
from aws_lambda_powertools import Logger

class Context:
    function_name, memory_limit_in_mb = "worker", 128
    invoked_function_arn = "arn:aws:lambda:eu-west-1:111122223333:function:worker"
    aws_request_id = "req-1"

logger = Logger(service="worker", logger_handler=None)
logger.registered_handler.setStream(sys.stdout)
logger.inject_lambda_context(log_event=True)(lambda e, c: None)(json.loads(sys.argv[1]), Context())
"""


def powertools_log_line(event: dict[str, Any]) -> str:
    """What a Powertools Logger with log_event=True writes for ``event``, run for real in a
    process of its own: Powertools keeps process-wide state (its cold-start flag) that later
    tests of this process compare with Lambda's."""
    result = subprocess.run([sys.executable, "-c", POWERTOOLS_LOGGER, json.dumps(event)],
                            capture_output=True, text=True, timeout=60, check=True)
    [line] = [text for text in result.stdout.splitlines() if text.strip()]
    return line


def test_eventbridge_exports_and_powertools_log_lines_become_captures(project: Path, tmp_path: Path) -> None:
    events = [{"version": "0", "id": f"e{n}", "detail-type": "OrderPlaced", "source": "shop", "account": "1",
               "time": "2026-12-01T20:15:02Z", "region": "eu-west-1", "resources": [], "detail": {"n": n}}
              for n in range(2)]
    export = tmp_path / "replay-export.jsonl"
    export.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    logged = {"detail-type": "Refund", "source": "shop", "detail": {"order": "o7"}}
    log = tmp_path / "worker.log"
    log.write_text("START RequestId: req-1 Version: $LATEST\n"
                   f"2026-12-01T20:15:02.123Z\treq-1\t{powertools_log_line(logged)}\n"
                   "END RequestId: req-1\n")
    for source in (export, log):
        result = plldb(["events", "import", "Worker", "--from-file", str(source)], project)
        assert result.returncode == 0, result.stderr
    kept = imported(project)
    assert [r["event"] for r in kept[:2]] == events and [r["imported"]["from"] for r in kept] == [
        "eventbridge", "eventbridge", "powertools-log"]
    assert kept[2]["event"] == logged and kept[2]["imported"] == {"from": "powertools-log", "file": "worker.log",
                                                                   "line": 2}
    ran = plldb(["replay", "--all", "Worker", "--credentials", "none"], project)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "3 same, 0 changed" in ran.stdout
    target = project / "tests" / "test_imported.py"
    assert plldb(["events", "export", *(r["id"][:8] for r in kept), "--pytest", str(target)], project).returncode == 0
    passed = run_exported(target)
    assert passed.returncode == 0 and "3 passed" in passed.stdout, passed.stdout
    (project / "worker" / "app.py").write_text(HANDLER.replace('return {"source": event.get("source")',
                                                               'raise KeyError("detail")\n    return {"source": 1'))
    failed = run_exported(target)
    assert "3 failed" in failed.stdout and "the handler failed: KeyError: 'detail'" in failed.stdout


def test_a_file_without_events_and_bad_options_are_clear_errors(project: Path, tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text('nothing here\n{"just": "json"}\n')
    result = plldb(["events", "import", "Worker", "--from-file", str(plain)], project)
    assert result.returncode == 1
    assert (f"--from-file {plain}: no event found; give an EventBridge event (JSON with source and detail-type), "
            "an array of them or one a line (an archive or replay export), or CloudWatch Logs lines holding a "
            "Powertools log_event") in " ".join(result.stderr.split())
    missing = plldb(["events", "import", "Worker", "--from-file", str(tmp_path / "none.json")], project)
    assert missing.returncode == 1 and "cannot read it (No such file or directory)" in missing.stderr
    both = plldb(["events", "import", "Worker"], project)
    assert both.returncode == 2 and "give --sqs-dlq QUEUE or --from-file FILE" in both.stderr
    assert imported(project) == [], "nothing kept"
