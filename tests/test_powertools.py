"""Powertools for AWS Lambda (Python) through the executor gives what it gives in Lambda.

One handler decorated with Logger (``inject_lambda_context``), Tracer
(``capture_lambda_handler``/``capture_method``) and Metrics (``log_metrics``) routes an API
Gateway event through the event handler and an SQS batch through batch processing. The same
invocations run, in order (so cold start and warm state line up), through the real awslambdaric
and through one executor; result bodies and every output line must be identical, timestamps
aside. The tracer runs enabled, as in Lambda, and adds no output of its own.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from plldb import protocol
from plldb.local.executor import Executor
from plldb.project.model import LocalFunction
from plldb.runner import H_TRACE_ID, Outcome
from tests.harness.container import launch
from tests.harness.runtime_api import SUCCESS, RuntimeApiEmulator

pytest.importorskip("aws_lambda_powertools", reason="aws-lambda-powertools is in the dev extra")
pytestmark = pytest.mark.timeout(120)

FIXTURE = Path(__file__).parent / "fixtures" / "powertools"
FUNCTION = "orders"
TIMES = [
    re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\+0000"),  # Logger
    re.compile(r'(?<="Timestamp":)\d+'),  # Metrics (EMF)
]

API_EVENT = {
    "resource": "/orders/{order_id}", "path": "/orders/42", "httpMethod": "GET", "headers": {},
    "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
    "pathParameters": {"order_id": "42"}, "stageVariables": None, "body": None, "isBase64Encoded": False,
    "requestContext": {"requestId": "r-1", "stage": "prod", "path": "/prod/orders/42", "httpMethod": "GET",
                       "resourcePath": "/orders/{order_id}"},
}
SQS_EVENT = {"Records": [
    {"messageId": message_id, "receiptHandle": "h", "body": body, "attributes": {}, "messageAttributes": {},
     "md5OfBody": "x", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
     "awsRegion": "us-east-1"}
    for message_id, body in (("m-1", "good"), ("m-2", "bad"))
]}
EVENTS = [API_EVENT, SQS_EVENT, API_EVENT]


def normalised(lines: list[str]) -> list[str]:
    for pattern in TIMES:
        lines = [pattern.sub("<time>", line) for line in lines]
    return lines


def in_lambda(code: Path, workdir: Path) -> tuple[list[tuple[bool, bytes]], list[dict], list[str]]:
    """The invocations through awslambdaric: (ok, body) each, the messages plldb would get, logs."""
    answers, messages = [], []
    with RuntimeApiEmulator(FUNCTION, timeout_s=20.0) as emulator:
        container = launch(emulator, code, "app.handler", workdir=workdir, function_name=FUNCTION, restart=False)
        try:
            for number, event in enumerate(EVENTS):
                request_id = f"00000000-0000-4000-8000-00000000000{number}"
                result = emulator.invoke(json.dumps(event), request_id=request_id, wait_s=30)
                answers.append((result.status == SUCCESS, result.body))
                messages.append({
                    "type": protocol.TYPE_INVOCATION, "request_id": request_id, "session_id": "s",
                    "function_name": FUNCTION, "invoked_function_arn": emulator.function_arn,
                    "deadline_ms": int((time.time() + 20) * 1000), "event": json.dumps(event),
                    "environment": container.env, "trace_id": result.next_headers[H_TRACE_ID],
                })
        finally:
            container.stop()
    return answers, messages, container.log_path.read_bytes().decode().split("\n")[:-1]


def in_plldb(task_root: Path, messages: list[dict]) -> tuple[list[tuple[bool, bytes]], list[str]]:
    lines: list[str] = []
    function = LocalFunction(logical_id="Orders", handler="app.handler", runtime="python3.11",
                             code_dir=task_root, import_path=(task_root,), physical_name=FUNCTION)
    executor = Executor({FUNCTION: function}, output=lambda _function, line: lines.append(line))
    answers = []
    try:
        for message in messages:
            done, outcomes = threading.Event(), []

            def answer(_request_id: str, outcome: Outcome, outcomes: list = outcomes, done: threading.Event = done) -> None:
                outcomes.append(outcome)
                done.set()

            executor.submit(protocol.parse_server_message(protocol.encode(message)), answer)
            assert done.wait(30), "no answer from the executor"
            answers.append((outcomes[0].ok, outcomes[0].body))
        module = sys.modules[executor.runtimes[FUNCTION].namespace.module_name("app")]
        assert module.tracer.disabled is False, "the tracer runs as in Lambda"
    finally:
        executor.shutdown(timeout=5)
    return answers, lines


def test_powertools_handler_gives_lambdas_results_and_log_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest records warnings; plldb shows them the standard way (written to sys.stderr), as Lambda does
    monkeypatch.setattr(warnings, "_showwarnmsg_impl", lambda msg: sys.stderr.write(warnings._formatwarnmsg(msg)))
    code = tmp_path / "code"
    shutil.copytree(FIXTURE, code)
    lambda_answers, messages, lambda_lines = in_lambda(code, tmp_path / "container")
    plldb_answers, plldb_lines = in_plldb(tmp_path / "container" / "task", messages)

    assert plldb_answers == lambda_answers
    assert json.loads(lambda_answers[0][1])["body"] == '{"id":"42","status":"shipped"}'
    assert json.loads(lambda_answers[1][1]) == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert normalised(plldb_lines) == normalised(lambda_lines)
    records = [json.loads(line) for line in plldb_lines if line.startswith('{"level"')]
    assert [(r["message"], r["cold_start"], r["function_request_id"][-1]) for r in records] == [
        ("fetching order", True, "0"), ("processed", False, "1"), ("fetching order", False, "2"),
    ]
    assert sum('"CloudWatchMetrics"' in line for line in plldb_lines) == 2, "one EMF blob per API call"
    assert not [line for line in plldb_lines if "xray" in line.lower() and not line.startswith('{"level"')]
