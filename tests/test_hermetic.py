"""Hermetic replay (issue 23): captures keep the AWS calls a handler made; replays and
exported tests answer them from the capture, with no credentials and no network.

The function (tests/fixtures/hermetic) fetches a secret when its module loads, reads a
DynamoDB item on a worker thread and puts an S3 object. It runs through plldb's executor
against a real moto server, captured the way attach captures (the executor hook, then
``records.keep`` once answered); replays run as `plldb replay` processes.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from packaging.requirements import Requirement

from plldb.capture import aws_calls, aws_values, aws_wire, invoke, records
from plldb.local.executor import CREDENTIALS_LOCAL, Executor
from tests.harness.moto_server import MotoServer, free_port
from tests.test_invoke import TESTS, plldb

HERMETIC = TESTS / "fixtures" / "hermetic"
API_KEY = "sk-live-TOPSECRET-4242"
SECRET_ID = "orders/api"
ITEMS = {"o1": 12, "o2": 30}


def make_state(client: Any) -> None:
    """The table, its items, the bucket and the secret the function uses."""
    dynamodb, s3, secrets = client("dynamodb"), client("s3"), client("secretsmanager")
    dynamodb.create_table(TableName="orders", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    for key, total in ITEMS.items():
        dynamodb.put_item(TableName="orders", Item={"id": {"S": key}, "total": {"N": str(total)}})
    s3.create_bucket(Bucket="receipts")
    secrets.create_secret(Name=SECRET_ID, SecretString=json.dumps({"api_key": API_KEY}))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return Path(shutil.copytree(HERMETIC, tmp_path / "orders"))


@pytest.fixture
def state(aws: MotoServer) -> MotoServer:
    make_state(boto3.client)
    return aws


def capture(project: Path, events: list[dict[str, Any]], lines: list[str] | None = None) -> list[dict[str, Any]]:
    """Run ``events`` at once through one executor with capture on, as attach does; the
    function's output goes to ``lines``."""
    template = project / "template.yaml"
    function = invoke.find_function(template, "OrdersFunction")
    folder = records.capture_dir(template)
    records.start(records.CaptureOptions(folder))
    executor = Executor({function.logical_id: function}, credentials=CREDENTIALS_LOCAL, max_workers=16,
                        output=lambda _function, line: (lines if lines is not None else []).append(line))
    answered = threading.Semaphore(0)
    try:
        for event in events:
            message = invoke.build_invocation(function, invoke.InvocationFields(event=json.dumps(event)),
                                              invoke.CREDENTIALS_LOCAL, None)

            def done(_request_id: str, outcome: Any, message: dict = message) -> None:
                records.keep(function, message, outcome, 0.01)
                answered.release()

            executor.submit(message, done)
        boto3.client("s3").list_buckets()  # plldb's own thread, while the handlers run: never recorded
        for _ in events:
            assert answered.acquire(timeout=60)
    finally:
        executor.shutdown(10)
        records.stop()
    return records.load_records(folder)


def names(record: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["phase"], c["service"], c["operation"]) for c in record["aws_calls"]]


def edit(project: Path, old: str, new: str) -> None:
    source = project / "functions" / "orders" / "app.py"
    text = source.read_text()
    assert old in text
    source.write_text(text.replace(old, new))


def replay(project: Path, capture_id: str, *args: str, endpoint: str | None = None) -> subprocess.CompletedProcess:
    """`plldb replay`, with every AWS endpoint pointing at a port nothing listens on (unless
    ``endpoint``): a call that left the process would fail."""
    return plldb(["replay", capture_id[:8], *args], project,
                 env={"AWS_ENDPOINT_URL": endpoint or f"http://127.0.0.1:{free_port()}"})


# --- Capture ------------------------------------------------------------------------------------


def test_capture_keeps_every_call_of_the_handler_and_its_threads(state: MotoServer, project: Path) -> None:
    [record] = capture(project, [{"id": "o1"}])
    assert names(record) == [("init", "secretsmanager", "GetSecretValue"),
                             ("invoke", "dynamodb", "GetItem"), ("invoke", "s3", "PutObject")]
    secret, get, put = record["aws_calls"]
    assert get["params"] == {"TableName": "orders", "Key": {"id": {"S": "o1"}}}, "made on a worker thread"
    assert get["response"]["Item"] == {"id": {"S": "o1"}, "total": {"N": "12"}}, "before boto3 made it Python"
    assert put["params"]["Key"] == "receipts/o1.json" and put["status"] == 200
    assert json.loads(secret["response"]["SecretString"]) == {"api_key": "[secret not recorded]"}
    assert record["http_calls"] == []


def test_a_warm_invocation_carries_the_calls_of_the_module_load(state: MotoServer, project: Path) -> None:
    first, second = capture(project, [{"id": "o1"}]), capture(project, [{"id": "o1"}, {"id": "o2"}])
    assert names(first[0])[0] == ("init", "secretsmanager", "GetSecretValue")
    cold = [r for r in second if r["id"] != first[0]["id"]]
    assert all(names(r)[0] == ("init", "secretsmanager", "GetSecretValue") for r in cold), \
        "each record holds the last load's calls: a replay loads the modules again"
    assert sorted(len(r["aws_calls"]) for r in cold) == [3, 3]


def test_a_secret_fetched_during_capture_never_reaches_the_disk(state: MotoServer, project: Path) -> None:
    capture(project, [{"id": "o1"}, {"id": "o2"}])
    written = [p for p in (project / ".plldb").rglob("*") if p.is_file()]
    assert len(written) >= 3
    for path in written:
        assert API_KEY not in path.read_text(), path


def test_concurrent_invocations_keep_their_own_calls(state: MotoServer, project: Path) -> None:
    events = [{"id": key, "together": 6} for key in ("o1", "o2") * 3]
    kept = capture(project, events)
    assert len(kept) == 6
    for record in kept:
        invoked = [c for c in record["aws_calls"] if c["phase"] == "invoke"]
        key = record["event"]["id"]
        assert [c["operation"] for c in invoked] == ["GetItem", "PutObject"]
        assert invoked[0]["params"]["Key"] == {"id": {"S": key}}
        assert invoked[1]["params"]["Key"] == f"receipts/{key}.json"


def test_calls_plldb_makes_itself_are_never_recorded(state: MotoServer, project: Path) -> None:
    kept = capture(project, [{"id": "o1"}, {"id": "o2"}])
    assert all("ListBuckets" not in {c["operation"] for c in r["aws_calls"]} for r in kept)


# --- Replay -------------------------------------------------------------------------------------


def test_replay_with_the_local_cloud_stopped_answers_from_the_capture(project: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    server = MotoServer().start()
    try:
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        make_state(boto3.client)
        [record] = capture(project, [{"id": "o2"}])
    finally:
        server.stop()
    result = replay(project, record["id"], endpoint=server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{record['id'][:8]} OrdersFunction: same (AWS calls answered from the capture)" in result.stdout


def test_a_write_with_other_parameters_is_reported_when_the_result_is_the_same(state: MotoServer,
                                                                                project: Path) -> None:
    [record] = capture(project, [{"id": "o1"}])
    edit(project, '"total": int(item["total"])})', '"total": int(item["total"]), "currency": "EUR"})')
    result = replay(project, record["id"])
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "OrdersFunction: changed (code changed since the capture; AWS calls answered from the capture)" in out
    assert "--- captured" not in out, "the result is the same"
    assert "AWS calls changed:" in out and "~ different parameters: s3:PutObject" in out
    assert '-    "base64": "eyJpZCI6ICJvMSIsICJ0b3RhbCI6IDEyfQ=="' in out


def test_a_new_key_is_an_added_and_removed_write(state: MotoServer, project: Path) -> None:
    [record] = capture(project, [{"id": "o1"}])
    edit(project, 'RECEIPT_PREFIX = "receipts/"', 'RECEIPT_PREFIX = "receipts/v2/"')
    result = replay(project, record["id"])
    assert result.returncode == 1
    assert '-  "Key": "receipts/o1.json"' in result.stdout and '+  "Key": "receipts/v2/o1.json"' in result.stdout


def test_a_read_the_capture_does_not_hold_fails_naming_the_nearest(state: MotoServer, project: Path) -> None:
    [record] = capture(project, [{"id": "o1"}])
    edit(project, 'Key={"id": event["id"]}', 'Key={"id": event["id"] + "-v2"}')
    result = replay(project, record["id"])
    assert result.returncode == 1
    assert ('error: dynamodb:GetItem {"Key":{"id":{"S":"o1-v2"}},"TableName":"orders"} was not recorded '
            '(the nearest recorded call is dynamodb:GetItem {"Key":{"id":{"S":"o1"}},"TableName":"orders"}): '
            "replay with --live to call AWS") in " ".join(result.stderr.split()).replace("\n", " ")
    assert "- removed: dynamodb:GetItem" in result.stdout or "~ different parameters: dynamodb:GetItem" in result.stdout


def test_live_replay_calls_aws_and_still_compares_the_calls(state: MotoServer, project: Path) -> None:
    [record] = capture(project, [{"id": "o1"}])
    live = plldb(["replay", record["id"][:8], "--live"], project, env=state.environment())
    assert live.returncode == 0, live.stdout + live.stderr
    assert f"{record['id'][:8]} OrdersFunction: same" in live.stdout and "answered" not in live.stdout
    edit(project, 'RECEIPT_PREFIX = "receipts/"', 'RECEIPT_PREFIX = "r/"')
    changed = plldb(["replay", record["id"][:8], "--live"], project, env=state.environment())
    assert changed.returncode == 1 and "~ different parameters: s3:PutObject" in changed.stdout


def test_offline_needs_a_capture_with_recorded_calls(state: MotoServer, project: Path) -> None:
    [record] = capture(project, [{"id": "o1"}])
    path = next((project / ".plldb" / "captures").rglob("*.json"))
    old = {k: v for k, v in record.items() if k not in ("aws_calls", "http_calls")}
    path.write_text(json.dumps(old))
    result = replay(project, record["id"], "--offline")
    assert result.returncode == 2
    assert ("--offline needs a capture that recorded its AWS calls (made by attach since plldb "
            "recorded them); replay it with --live") in " ".join(result.stderr.split())


# --- Export -------------------------------------------------------------------------------------


def run_exported(test_file: Path) -> subprocess.CompletedProcess:
    """pytest on the exported module in a fresh process where plldb cannot be imported, with no
    AWS configuration and every endpoint refusing connections."""
    code = "import sys; sys.modules['plldb'] = None; import pytest; sys.exit(pytest.main(sys.argv[1:]))"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(test_file.parent),
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    return subprocess.run([sys.executable, "-c", code, "-q", "-p", "no:cacheprovider", str(test_file)],
                          cwd=test_file.parent, env=env, capture_output=True, text=True, timeout=120)


def test_exported_test_runs_without_plldb_then_fails_on_a_changed_write(state: MotoServer, project: Path) -> None:
    kept = capture(project, [{"id": "o1"}, {"id": "o2"}])
    target = project / "tests" / "test_orders_captured.py"
    result = plldb(["events", "export", *(r["id"][:8] for r in kept), "--pytest", str(target)], project)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (target.parent / "plldb_hermetic").iterdir()) == [
        "__init__.py", "aws_values.py", "aws_wire.py", "secrets.py", "standalone.py"]
    assert API_KEY not in target.with_suffix(".json").read_text()
    passed = run_exported(target)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "2 passed" in passed.stdout
    edit(project, 'RECEIPT_PREFIX = "receipts/"', 'RECEIPT_PREFIX = "r/"')
    failed = run_exported(target)
    assert failed.returncode == 1 and "2 failed" in failed.stdout
    assert "AWS calls changed:" in failed.stdout and '+ s3:PutObject {"Body"' in failed.stdout


def test_exported_test_fails_on_a_call_the_capture_does_not_hold(state: MotoServer, project: Path) -> None:
    [record] = capture(project, [{"id": "o1"}])
    target = project / "tests" / "test_orders_captured.py"
    assert plldb(["events", "export", record["id"][:8], "--pytest", str(target)], project).returncode == 0
    edit(project, "    return {", '    boto3.client("sqs").list_queues()\n    return {')
    failed = run_exported(target)
    assert failed.returncode == 1
    assert "sqs:ListQueues {} was not recorded (the nearest recorded call is" in failed.stdout


def fresh_venv(folder: Path, *wanted: str) -> Path:
    """A new virtualenv holding only the distributions ``wanted`` and what they require
    (linked from this interpreter's, so no network is needed); returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    todo, seen = list(wanted), set()
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        if dist.metadata["Name"].lower() in seen:
            continue
        seen.add(dist.metadata["Name"].lower())
        needed = [Requirement(r) for r in dist.requires or []]
        todo += [r.name for r in needed if r.marker is None or r.marker.evaluate({"extra": ""})]
        for top in {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}:
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return python


def test_exported_test_passes_in_a_fresh_virtualenv_with_only_pytest_and_boto3(
        state: MotoServer, project: Path, tmp_path: Path) -> None:
    kept = capture(project, [{"id": "o1"}])
    target = project / "tests" / "test_orders_captured.py"
    assert plldb(["events", "export", kept[0]["id"][:8], "--pytest", str(target)], project).returncode == 0
    python = fresh_venv(tmp_path / "venv", "pytest", "boto3")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    assert subprocess.run([str(python), "-c", "import plldb"], cwd=tmp_path, env=env,
                          capture_output=True).returncode == 1, "plldb is not in the new virtualenv"
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


# --- What is written down -------------------------------------------------------------------


def test_secret_values_become_markers_that_keep_their_shape() -> None:
    response = aws_values.private(aws_values.encode({
        "SecretString": json.dumps({"user": "ada", "password": "pw"}),
        "Parameters": [{"Name": "a", "Type": "SecureString", "Value": "s3cret"},
                       {"Name": "b", "Type": "String", "Value": "plain"}],
        "Plaintext": b"k" * 32,
        "Credentials": {"AccessKeyId": "ASIA1", "SecretAccessKey": "sk", "SessionToken": "tok"},
        "Item": {"token": {"S": "abc"}, "name": {"S": "ada"}},
    }), keep_secrets=False)
    assert json.loads(response["SecretString"]) == {"user": "[secret not recorded]", "password": "[secret not recorded]"}
    assert [p["Value"] for p in response["Parameters"]] == ["[secret not recorded]", "plain"]
    assert aws_values.decode(response["Plaintext"]) == b"\0" * 32, "a data key keeps its length"
    assert response["Credentials"] == {"AccessKeyId": "ASIA1", "SecretAccessKey": "[secret not recorded]",
                                       "SessionToken": "[secret not recorded]"}
    assert response["Item"] == {"token": {"S": "[redacted]"}, "name": {"S": "ada"}}, "boto3 still reads the item"
    kept = aws_values.private(aws_values.encode({"Item": {"token": {"S": "abc"}}}), keep_secrets=True)
    assert kept == {"Item": {"token": {"S": "abc"}}}, "--capture-keep-secrets keeps fields, never secret values"


def test_values_round_trip_and_what_cannot_be_answered() -> None:
    when = datetime.datetime(2026, 12, 1, 20, 15, tzinfo=datetime.timezone.utc)
    value = {"Blob": b"\x00\x01", "When": when, "List": [1, "a", None]}
    assert aws_values.decode(json.loads(json.dumps(aws_values.encode(value)))) == value
    big = aws_values.encode(b"x" * (aws_values.BODY_LIMIT + 1))
    with pytest.raises(aws_values.UnanswerableCall,
                       match=f"a value that was not recorded \\(a body of {aws_values.BODY_LIMIT + 1} bytes, "
                             f"more than the {aws_values.BODY_LIMIT} kept\\)"):
        aws_values.decode({"Body": big})
    upload = io.BytesIO(b"y" * (aws_values.BODY_LIMIT + 6))
    upload.seek(5)
    assert aws_values.encode({"Body": upload}) == {"Body": {"$plldb": "bytes", "size": aws_values.BODY_LIMIT + 1,
                                                            "sha256": None}}
    assert upload.tell() == 5, "a body is read (here: measured) without moving it"
    small = io.BytesIO(b"abc")
    assert aws_values.decode(aws_values.encode(small)) == b"abc" and small.read() == b"abc"
    with pytest.raises(aws_values.RecordedFailure, match="^ValueError: boom$"):
        aws_values.raise_error(aws_values.encode_error(ValueError("boom")))


def test_an_aws_error_is_recorded_and_raised_again_offline(state: MotoServer, project: Path) -> None:
    edit(project, 'os.environ["TABLE"]', '"no-such-table"')
    [record] = capture(project, [{"id": "o1"}])
    get = record["aws_calls"][1]
    assert get["status"] == 400 and get["response"]["Error"]["Code"] == "ResourceNotFoundException"
    assert record["outcome"]["error"]["errorType"] == "ResourceNotFoundException"
    result = replay(project, record["id"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_plain_http_requests_are_listed_not_recorded(state: MotoServer, project: Path) -> None:
    url = f"{state.url}/moto-api/data.json?token=abc"
    edit(project, "    return {", f"    import urllib.request\n    urllib.request.urlopen({url!r}).read()\n    return {{")
    [record] = capture(project, [{"id": "o1"}])
    assert record["http_calls"] == [{"method": "GET", "host": f"127.0.0.1:{state.port}",
                                     "path": "/moto-api/data.json"}], "no query string, no content"
    assert [c["operation"] for c in record["aws_calls"]] == ["GetSecretValue", "GetItem", "PutObject"]
    result = replay(project, record["id"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"the handler also made plain HTTP requests, not answered from the capture: GET 127.0.0.1:{state.port}"
            in " ".join(result.stderr.split()))


def test_a_call_without_an_answer_yet_is_written_as_unfinished() -> None:
    tape = aws_calls.Tape()
    tape.begin("s3", "PutObject", {"Bucket": "b", "Key": "k", "Body": b"x"})
    [call] = tape.snapshot()
    assert call["error"]["message"] == "the call had no answer when the invocation was answered"


def test_a_call_that_cannot_be_written_down_still_goes_through(state: MotoServer, project: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> Any:  # a fault no real parameter produces: encode takes any value
        raise RuntimeError("cannot encode")

    monkeypatch.setattr(aws_wire, "normal_params", broken)
    lines: list[str] = []
    [record] = capture(project, [{"id": "o1"}], lines)
    assert record["outcome"]["ok"] and record["aws_calls"] == []
    text = "\n".join(lines)  # the warning is in the function's output: the thread is the handler's
    assert "secretsmanager:GetSecretValue not recorded" in text and "dynamodb:GetItem not recorded" in text
