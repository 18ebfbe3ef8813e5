"""The cost of recording a handler's AWS calls (issue 23): added latency per call.

A function of a small project runs in plldb's executor, in this process, and makes
``CALLS_PER_INVOCATION`` DynamoDB ``GetItem`` calls on the local cloud's moto, timing each
one itself. Invocations with recording on (the capture's executor hook and botocore hook
installed, as under `plldb attach`) and off alternate, so a busy machine weighs on both
alike; each invocation makes a fresh client, so one run's hooks never reach the other's.
The figure is the per-call latency with recording against the one without; the target is
≤ 0.5 ms added at p50.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from benchmarks.report import figure
from benchmarks.suite import Bench, interleaved
from plldb.capture import aws_calls, invoke
from plldb.local.executor import CREDENTIALS_LOCAL, Executor

CALLS_PER_INVOCATION = 20
RUNS = 30
TARGET_MS = 0.5
TABLE = "plldb-bench-recording"

TEMPLATE = """AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  Calls:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: calls/
      Handler: app.handler
      Runtime: python3.11
      Timeout: 60
"""
HANDLER = """import time

import boto3


def handler(event, context):
    client = boto3.client("dynamodb")
    timings = []
    for _ in range(event["calls"]):
        started = time.perf_counter()
        client.get_item(TableName=event["table"], Key={"id": {"S": "k"}})
        timings.append(time.perf_counter() - started)
    return timings
"""


def _project(folder: Path) -> Path:
    (folder / "calls").mkdir(parents=True, exist_ok=True)
    (folder / "template.yaml").write_text(TEMPLATE)
    (folder / "calls" / "app.py").write_text(HANDLER)
    return folder / "template.yaml"


def _table(bench: Bench) -> None:
    import boto3

    dynamodb = boto3.client("dynamodb")  # the local cloud's administrator (environ())
    dynamodb.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "k"}, "body": {"S": "x" * 200}})


def recording(bench: Bench) -> None:
    """Per-call latency of GetItem on moto, recording on vs off, interleaved."""
    template = _project(bench.work_dir / "recording")
    function = invoke.find_function(template, "Calls")
    samples: dict[bool, list[float]] = {True: [], False: []}
    with bench.cloud.environ():
        _table(bench)
        executor = Executor({function.logical_id: function}, credentials=CREDENTIALS_LOCAL, output=lambda *_: None)
        try:
            def run(recorded: bool) -> float:
                timings = _invoke(executor, function, recorded)
                samples[recorded].extend(timings)
                return sum(timings)

            _invoke(executor, function, False)  # the handler's module and boto3 loaded
            interleaved(RUNS, lambda: run(False), lambda: run(True))
        finally:
            executor.shutdown(10)
    item = figure("recording (capture of the handler's AWS calls)",
                  f"DynamoDB GetItem on moto, recorded vs not ({CALLS_PER_INVOCATION} calls an invocation)",
                  samples[True], samples[False], target=f"≤ {TARGET_MS} ms added p50")
    item.met = item.added_p50 is not None and item.added_p50 <= TARGET_MS
    bench.add(item)


def _invoke(executor: Executor, function: Any, recorded: bool) -> list[float]:
    """One invocation, with recording installed for it or not; the handler's call timings."""
    recorder = aws_calls.Recorder(lambda: aws_calls.Tape())
    if recorded:
        aws_calls.start(recorder)
    event = json.dumps({"calls": CALLS_PER_INVOCATION, "table": TABLE})
    message = invoke.build_invocation(function, invoke.InvocationFields(event=event), CREDENTIALS_LOCAL, None)
    answered = threading.Event()
    outcomes: list[Any] = []

    def done(_request_id: str, outcome: Any) -> None:
        outcomes.append(outcome)
        answered.set()

    try:
        executor.submit(message, done)
        answered.wait(120)
    finally:
        if recorded:
            aws_calls.stop(recorder)
    outcome = outcomes[0]
    assert outcome.ok, outcome.error
    if recorded:
        assert len(recorder.take(message["request_id"])["aws_calls"]) == CALLS_PER_INVOCATION
    return json.loads(outcome.body)
