"""Capture records: what is written (and what never is), where, with which modes, how many."""

from __future__ import annotations

import json
import logging
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from plldb import runner
from plldb.capture import records
from plldb.project.discovery import discover
from plldb.project.model import LocalFunction
from tests.test_invoke import SHOP, assert_error, plldb

REQUEST_ID = "11111111-2222-3333-4444-555555555555"
ENVIRONMENT = {
    "CURRENCY": "EUR",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "ASIAFUNCTIONKEY",
    "AWS_SECRET_ACCESS_KEY": "function-secret",
    "AWS_SESSION_TOKEN": "function-token",
    "STRIPE_API_KEY": "sk_live_1",
    "DB_PASSWORD": "hunter2",
    "DEBUGGER_SESSION_ID": "session-secret",
    "AWS_LAMBDA_EXEC_WRAPPER": "/opt/plldb-shim/wrapper",
}
EVENT = {"headers": {"Authorization": "Bearer abc", "Host": "shop"}, "Records": [{"body": "b1"}, {"body": "b2"}]}


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHOP, tmp_path / "shop"))


@pytest.fixture
def function(shop: Path) -> LocalFunction:
    return discover(shop / "template.yaml").functions["ShopFunction"]


def invocation(event: Any = EVENT, request_id: str = REQUEST_ID) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "function_name": "shop-ShopFunction-ABC",
        "event": json.dumps(event),
        "deadline_ms": int(time.time() * 1000) + 5000,
        "invoked_function_arn": "arn:aws:lambda:eu-west-1:111122223333:function:shop-ShopFunction-ABC",
        "client_context": None,
        "cognito_identity": '{"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool"}',
        "tenant_id": "tenant-7",
        "environment": ENVIRONMENT,
    }


def ok(result: Any) -> runner.Outcome:
    return runner.Outcome(True, json.dumps(result).encode())


def written(folder: Path) -> list[Path]:
    return sorted((folder / records.RECORDS_FOLDER).glob("*/*.json"))


def test_record_holds_event_context_outcome_and_no_secret(function: LocalFunction) -> None:
    record = records.build_record(function, invocation(), ok({"total": 6}), 0.25, time.time())
    assert record["format"] == 1 and record["function"] == "ShopFunction"
    assert record["event"] == {**EVENT, "headers": {"Authorization": "[redacted]", "Host": "shop"}}
    assert record["outcome"] == {"ok": True, "result": {"total": 6}, "result_is_text": False}
    assert record["duration_ms"] == 250.0
    context = record["context"]
    assert context["request_id"] == REQUEST_ID and context["tenant_id"] == "tenant-7"
    assert context["invoked_function_arn"].endswith(":function:shop-ShopFunction-ABC")
    assert context["cognito_identity"].startswith('{"cognitoIdentityId"')
    assert 5000 <= context["deadline_left_ms"] <= 5300  # received 250 ms before it finished
    assert record["environment"] == {"CURRENCY": "EUR", "AWS_REGION": "eu-west-1"}
    assert record["environment_left_out"] == [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "DB_PASSWORD", "STRIPE_API_KEY"]
    text = json.dumps(record)
    for secret in ("ASIAFUNCTIONKEY", "function-secret", "function-token", "sk_live_1", "hunter2", "session-secret"):
        assert secret not in text


def test_error_outcome_is_kept_whole(function: LocalFunction) -> None:
    error = runner.make_error("an order needs items", "ValueError", ['  File "app.py", line 9'], REQUEST_ID)
    record = records.build_record(function, invocation(), runner.Outcome.failure(error, {}), 0.01, time.time())
    assert record["outcome"] == {"ok": False, "error": error}


def test_redaction_blanks_fields_of_event_and_result(function: LocalFunction) -> None:
    paths = tuple(records.parse_path(p) for p in ("headers.Authorization", "Records[*].body", "token"))
    record = records.build_record(function, invocation(), ok({"token": "t0k3n", "n": 1}), 0.1, time.time(), paths)
    assert record["event"] == {"headers": {"Authorization": "[redacted]", "Host": "shop"},
                               "Records": [{"body": "[redacted]"}, {"body": "[redacted]"}]}
    assert record["outcome"]["result"] == {"token": "[redacted]", "n": 1}
    assert record["redacted"] == ["headers.Authorization", "Records.*.body", "token"]


def test_well_known_secrets_are_blanked_by_default(function: LocalFunction) -> None:
    """Headers in any case and in multiValueHeaders, tokens and passwords at any depth, in the
    event and in the result; lists keep their length (a replay hands the same shape)."""
    event = {"headers": {"authorization": "Bearer abc", "X-Api-Key": "k1", "Host": "shop"},
             "multiValueHeaders": {"Cookie": ["a=1", "b=2"], "Accept": ["*/*"]},
             "cookies": ["sid=1"], "body": {"user": "ada", "password": "pw", "nested": [{"client_secret": "cs"}]}}
    result = {"access_token": "at", "refresh_token": "rt", "id_token": "it", "name": "ada",
              "headers": {"Set-Cookie": "sid=2"}}
    record = records.build_record(function, invocation(event), ok(result), 0.1, time.time())
    assert record["event"] == {
        "headers": {"authorization": "[redacted]", "X-Api-Key": "[redacted]", "Host": "shop"},
        "multiValueHeaders": {"Cookie": ["[redacted]", "[redacted]"], "Accept": ["*/*"]},
        "cookies": ["[redacted]"],
        "body": {"user": "ada", "password": "[redacted]", "nested": [{"client_secret": "[redacted]"}]}}
    assert record["outcome"]["result"] == {"access_token": "[redacted]", "refresh_token": "[redacted]",
                                           "id_token": "[redacted]", "name": "ada",
                                           "headers": {"Set-Cookie": "[redacted]"}}
    assert record["secrets_redacted"] is True
    kept = records.build_record(function, invocation(event), ok(result), 0.1, time.time(), keep_secrets=True)
    assert (kept["event"], kept["outcome"]["result"], kept["secrets_redacted"]) == (event, result, False)


def test_redact_path_forms() -> None:
    assert records.parse_path("a.b[0].c") == ("a", "b", "0", "c")
    assert records.redact({"a": [1, {"c": 2}]}, ("a", "1", "c")) == {"a": [1, {"c": "[redacted]"}]}
    assert records.redact({"a": 1}, ("b", "c")) == {"a": 1}, "absent: unchanged"


@pytest.mark.parametrize("text", ["", "a..b", "a[x]", ".a", "[0]", "a."])
def test_bad_redact_path_is_a_clear_error(text: str) -> None:
    with pytest.raises(records.CaptureError, match="is not a field path: use dots and"):
        records.parse_path(text)


def test_code_version_follows_the_source(function: LocalFunction, shop: Path) -> None:
    before = records.code_version(function)
    assert records.code_version(function) == before
    source = shop / "functions" / "shop" / "app.py"
    source.write_text(source.read_text().replace("PRICE = 3", "PRICE = 4"))
    assert records.code_version(function) != before


def test_files_are_private_and_the_folder_ignores_itself(function: LocalFunction, tmp_path: Path) -> None:
    folder = tmp_path / "project" / ".plldb"
    records.prepare_folder(folder)
    record = records.build_record(function, invocation(), ok(1), 0.1, time.time())
    path = records.write_record(folder, record, 50)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
    assert path.parent.name == "ShopFunction" and path.name.endswith(f"-{record['id'][:8]}.json")
    assert json.loads(path.read_text()) == record
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no partial file left behind"


def test_pruning_keeps_the_newest(function: LocalFunction, tmp_path: Path) -> None:
    folder = tmp_path / ".plldb"
    records.prepare_folder(folder)
    start = time.time()
    ids = []
    for n in range(5):
        record = records.build_record(function, invocation(request_id=f"r{n}"), ok(n), 0.1, start + n)
        records.write_record(folder, record, 3)
        ids.append(record["id"])
    kept = records.load_records(folder, "ShopFunction")
    assert [r["id"] for r in kept] == ids[2:]
    assert [r["context"]["request_id"] for r in kept] == ["r2", "r3", "r4"]


def test_folder_that_cannot_be_written_is_an_error(tmp_path: Path) -> None:
    (tmp_path / ".plldb").write_text("a file, not a folder")
    with pytest.raises(records.CaptureError) as caught:
        records.prepare_folder(tmp_path / ".plldb")
    assert str(caught.value).startswith(f"cannot write captures to {tmp_path / '.plldb'} (")
    assert "fix the folder's permissions, or attach with --no-capture" in str(caught.value)


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_the_writer_never_holds_up_the_caller(function: LocalFunction, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that stalls (faked: a real one will not stall on cue) delays only the writer."""
    stalled = threading.Event()
    real_write = records.write_record

    def slow_write(*args: Any) -> Path:
        stalled.wait(10)
        return real_write(*args)

    monkeypatch.setattr(records, "write_record", slow_write)
    folder = tmp_path / ".plldb"
    records.start(records.CaptureOptions(folder))
    try:
        started = time.monotonic()
        for n in range(3):
            records.keep(function, invocation(request_id=f"r{n}"), ok(n), 0.1)
        assert time.monotonic() - started < 0.5
        assert written(folder) == []
        stalled.set()
        wait_until(lambda: len(written(folder)) == 3)
    finally:
        records.stop()
    assert [r["context"]["request_id"] for r in records.load_records(folder)] == ["r0", "r1", "r2"]


def test_keep_without_capture_does_nothing(function: LocalFunction, tmp_path: Path) -> None:
    records.keep(function, invocation(), ok(1), 0.1)  # --no-capture: no writer started
    assert not (tmp_path / ".plldb").exists()


def test_reading_skips_unknown_formats_and_finds_by_prefix(function: LocalFunction, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / ".plldb"
    records.prepare_folder(folder)
    record = records.build_record(function, invocation(), ok(1), 0.1, time.time())
    records.write_record(folder, record, 50)
    future = {**record, "format": 2, "id": "f" * 32}
    (records.function_folder(folder, "ShopFunction") / "99999999-future.json").write_text(json.dumps(future))
    with caplog.at_level(logging.WARNING):
        assert [r["id"] for r in records.load_records(folder)] == [record["id"]]
    assert "capture format 2 is not one this plldb reads (1)" in caplog.text
    assert records.find_record(folder, record["id"][:6].upper()) == record


@pytest.mark.parametrize("wanted, message", [
    ("abc", "capture id 'abc' is too short: give at least 4 characters"),
    ("0000dead", "no capture '0000dead' in"),
])
def test_unknown_or_short_id(tmp_path: Path, wanted: str, message: str) -> None:
    with pytest.raises(records.CaptureError, match=message):
        records.find_record(tmp_path / ".plldb", wanted)


def test_attach_refuses_a_capture_folder_it_cannot_write(shop: Path) -> None:
    """Before anything else happens (no AWS call: none is configured here)."""
    (shop / ".plldb").write_text("a file where the folder should be")
    result = plldb(["attach", "--stack-name", "shop"], shop)
    assert_error(result, f"cannot write captures to {shop / '.plldb'} (", "or attach with --no-capture")


def test_no_capture_leaves_the_folder_alone(shop: Path) -> None:
    """With --no-capture the unusable folder is no error: attach gets as far as AWS."""
    (shop / ".plldb").write_text("a file where the folder should be")
    result = plldb(["attach", "--stack-name", "shop", "--no-capture"], shop)
    assert result.returncode == 1
    assert_error(result, "No AWS region configured")


def test_attach_refuses_a_bad_redact_path(shop: Path) -> None:
    result = plldb(["attach", "--stack-name", "shop", "--capture-redact", "headers..Authorization"], shop)
    assert_error(result, "--capture-redact 'headers..Authorization' is not a field path")
    assert not (shop / ".plldb").exists(), "nothing written for a refused attach"


# --- End to end: plldb attach on the local cloud ------------------------------------------------

from tests.test_e2e_attach import app, attach, cloud, invoke, lam, original  # noqa: E402,F401 - fixtures


@pytest.mark.e2e
def test_attach_captures_each_invocation_redacted_private_and_pruned(
    cloud: Any, lam: Any, attach: Any, app: Path  # noqa: F811 - the fixtures imported above
) -> None:
    folder = app / ".plldb"
    shutil.rmtree(folder, ignore_errors=True)
    plldb = attach("--capture-max", "2", "--capture-redact", "name")
    for n in range(3):
        result, error = invoke(lam, cloud, "HelloFunction", {"name": "Ada", "n": n})
        assert error is None and result["greeting"] == "hello-from-env, Ada!"
    error, kind = invoke(lam, cloud, "EchoFunction", "not an object")
    wait_until(lambda: len(written(folder)) == 3)
    assert plldb.interrupt() == 0
    hello = records.load_records(folder, "HelloFunction")
    assert [r["event"] for r in hello] == [{"name": "[redacted]", "n": 1}, {"name": "[redacted]", "n": 2}]
    local = discover(app / "template.yaml").functions["HelloFunction"]
    for record in hello:
        assert record["outcome"]["ok"] and record["outcome"]["result"]["greeting"] == "hello-from-env, Ada!"
        assert record["function_name"] == cloud.functions["HelloFunction"]
        assert record["context"]["invoked_function_arn"].endswith(f":function:{cloud.functions['HelloFunction']}")
        assert record["environment"]["GREETING"] == "hello-from-env"
        assert not set(record["environment"]) & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
        assert "AWS_SECRET_ACCESS_KEY" in record["environment_left_out"]
        assert record["code_version"] == records.code_version(local)
    [echo] = records.load_records(folder, "EchoFunction")
    assert echo["event"] == "not an object" and echo["outcome"]["ok"] is (kind is None)
    for path in written(folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert '"AWS_SESSION_TOKEN":' not in path.read_text()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert (folder / ".gitignore").read_text().splitlines()[-1] == "*"
