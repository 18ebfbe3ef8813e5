"""`plldb events`, `plldb replay` and `plldb events export --pytest` on real captures.

The captures are made the way attach makes them (a real run through the executor, then
:func:`plldb.capture.records.build_record`), in a copy of the shop project the tests can edit.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from plldb.capture import invoke, records
from plldb.project.discovery import discover
from tests.test_invoke import SHOP, TESTS, assert_error, plldb

ORDER = {"items": ["tea", "cake"]}


def make_capture(project: Path, event: Any, tenant: str | None = None,
                 environment: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the shop function once, here, and keep it as attach would."""
    function = discover(project / "template.yaml").functions["ShopFunction"]
    fields = invoke.InvocationFields(event=json.dumps(event), tenant_id=tenant, environment=environment or {},
                                     invoked_function_arn="arn:aws:lambda:eu-west-1:111122223333:function:shop")
    message = invoke.build_invocation(function, fields, invoke.CREDENTIALS_LOCAL, None)
    outcome, seconds = invoke.run_invocation(function, fields, output=lambda *_: None)
    record = records.build_record(function, message, outcome, seconds, time.time())
    folder = records.capture_dir(project / "template.yaml")
    records.prepare_folder(folder)
    records.write_record(folder, record, 50)
    return record


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SHOP, tmp_path / "shop"))


@pytest.fixture
def captured(shop: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """An answered order and a failed one."""
    return make_capture(shop, ORDER, tenant="tenant-1"), make_capture(shop, {})


def change_price(project: Path) -> None:
    source = project / "functions" / "shop" / "app.py"
    source.write_text(source.read_text().replace("PRICE = 3", "PRICE = 4"))


def test_capture_of_a_real_run_holds_its_context(captured: tuple[dict, dict]) -> None:
    order, failed = captured
    assert order["outcome"]["result"]["total"] == 6 and order["outcome"]["result"]["tenant"] == "tenant-1"
    assert order["outcome"]["result"]["request_id"] == order["context"]["request_id"]
    assert failed["outcome"]["error"]["errorMessage"] == "an order needs items"


def test_replay_same_then_changed_after_an_edit(shop: Path, captured: tuple[dict, dict]) -> None:
    order, _ = captured
    same = plldb(["replay", order["id"][:8]], shop)
    assert same.returncode == 0, same.stderr
    assert f"{order['id'][:8]} ShopFunction: same" in same.stdout
    assert "code changed" not in same.stdout
    change_price(shop)
    changed = plldb(["replay", order["id"][:8]], shop)
    assert changed.returncode == 1, changed.stderr
    assert f"{order['id'][:8]} ShopFunction: changed (code changed since the capture)" in changed.stdout
    assert '-    "total": 6' in changed.stdout and '+    "total": 8' in changed.stdout
    changes = [line for line in changed.stdout.splitlines() if line.startswith(("-  ", "+  "))]
    assert len(changes) == 2, "the request id, tenant and ARN are replayed as captured"


def test_replay_names_the_variables_it_could_not_restore(shop: Path) -> None:
    record = make_capture(shop, ORDER, environment={"DB_PASSWORD": "hunter2", "AWS_SECRET_ACCESS_KEY": "k"})
    result = plldb(["replay", record["id"]], shop)
    assert result.returncode == 0, result.stderr
    assert "warning: DB_PASSWORD was not captured (secret): the handler gets your local value, if any" in result.stderr
    assert "AWS_SECRET_ACCESS_KEY" not in result.stderr, "credentials are --credentials' business"


def test_replay_all_summarises(shop: Path, captured: tuple[dict, dict]) -> None:
    result = plldb(["replay", "--all", "ShopFunction"], shop)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("2 same, 0 changed")
    change_price(shop)
    result = plldb(["replay", "--all", "ShopFunction"], shop)
    assert result.returncode == 1
    assert result.stdout.strip().endswith("1 same, 1 changed")


def test_replay_shows_a_result_that_became_an_error(shop: Path, captured: tuple[dict, dict]) -> None:
    order, _ = captured
    source = shop / "functions" / "shop" / "app.py"
    source.write_text(source.read_text().replace("    return {", "    raise KeyError('gone')\n    return {"))
    result = plldb(["replay", order["id"]], shop)
    assert result.returncode == 1
    assert '-  "result": {' in result.stdout and '+  "error": {' in result.stdout
    assert '"errorType": "KeyError"' in result.stdout


def test_events_list_json_and_show(shop: Path, captured: tuple[dict, dict]) -> None:
    order, failed = captured
    table = plldb(["events"], shop)
    assert table.returncode == 0, table.stderr
    for text in (order["id"][:8], failed["id"][:8], "ShopFunction", "ok", "ValueError", f"{order['event_bytes']} B"):
        assert text in table.stdout
    rows = json.loads(plldb(["events", "ShopFunction", "--json"], shop).stdout)
    assert [(r["id"], r["outcome"]) for r in rows] == [(order["id"], "ok"), (failed["id"], "ValueError")]
    assert json.loads(plldb(["events", "--json", "OtherFunction"], shop).stdout) == []
    shown = plldb(["events", "show", failed["id"][:6]], shop)
    assert shown.returncode == 0 and json.loads(shown.stdout) == failed


def test_events_with_no_capture_says_where_it_looked(tmp_path: Path) -> None:
    result = plldb(["events"], tmp_path)
    assert result.returncode == 0
    assert f"no captured invocation in {tmp_path / '.plldb'}: plldb attach captures them" in result.stdout


def test_unknown_capture_id(shop: Path, captured: tuple[dict, dict]) -> None:
    assert_error(plldb(["replay", "0000dead"], shop), "no capture '0000dead' in", "run plldb events")
    assert_error(plldb(["events", "show", "0000dead"], shop), "no capture '0000dead' in")
    assert_error(plldb(["events", "show", "ab"], shop), "too short")


def test_replay_of_a_function_no_longer_in_the_template(shop: Path, captured: tuple[dict, dict]) -> None:
    order, _ = captured
    [path] = (shop / ".plldb" / "captures" / "ShopFunction").glob(f"*-{order['id'][:8]}.json")
    path.write_text(json.dumps({**order, "function": "GoneFunction"}))
    assert_error(plldb(["replay", order["id"][:8]], shop),
                 "no function 'GoneFunction' in the SAM/CloudFormation template (read template.yaml); "
                 "Python functions there: ShopFunction")
    assert_error(plldb(["replay", "--all", "GoneFunction"], shop), "no function 'GoneFunction'")


def test_replay_all_of_a_function_without_captures(shop: Path) -> None:
    assert_error(plldb(["replay", "--all", "ShopFunction"], shop),
                 f"no captured invocation of ShopFunction in {shop / '.plldb'}: plldb attach captures them")


def test_replay_needs_an_id_or_all(shop: Path) -> None:
    result = plldb(["replay"], shop)
    assert result.returncode == 2 and "give a capture ID, or --all FUNCTION" in result.stderr


def run_pytest(module: Path, cwd: Path) -> subprocess.CompletedProcess:
    """pytest on ``module`` in a fresh process, outside this repository's configuration."""
    env = {**os.environ, "PYTHONPATH": str(TESTS.parent)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_exported_pytest_module_passes_then_fails_after_a_change(shop: Path, captured: tuple[dict, dict]) -> None:
    order, failed = captured
    target = shop / "tests" / "test_captured.py"
    result = plldb(["events", "export", order["id"][:8], failed["id"][:8], "--pytest", "tests/test_captured.py"], shop)
    assert result.returncode == 0, result.stderr
    assert "wrote tests/test_captured.py and tests/test_captured.json (2 capture(s))" in result.stdout
    assert [r["id"] for r in json.loads(target.with_suffix(".json").read_text())] == [order["id"], failed["id"]]
    passing = run_pytest(target, shop)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "2 passed" in passing.stdout
    change_price(shop)
    failing = run_pytest(target, shop)
    assert failing.returncode == 1
    assert "1 failed, 1 passed" in failing.stdout
    assert "changed since the capture" in failing.stdout and '+    "total": 8' in failing.stdout


def test_exported_files_are_private_and_the_export_says_what_they_hold(
    shop: Path, captured: tuple[dict, dict]
) -> None:
    target = shop / "tests" / "test_captured.py"
    target.parent.mkdir()
    target.write_text("# an older export, readable by everyone\n")
    target.chmod(0o644)
    result = plldb(["events", "export", captured[0]["id"][:8], "--pytest", "tests/test_captured.py"], shop)
    assert result.returncode == 0, result.stderr
    for path in (target, target.with_suffix(".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert ("warning: tests/test_captured.json holds captured events, results and environments "
            "(well-known secrets blanked unless attach ran with --capture-keep-secrets; credentials "
            "never kept): both files are readable by you only; read them before you commit or share "
            "them") in " ".join(result.stderr.split())


def test_export_needs_a_python_file(shop: Path, captured: tuple[dict, dict]) -> None:
    result = plldb(["events", "export", captured[0]["id"], "--pytest", "captured.txt"], shop)
    assert_error(result, "--pytest captured.txt: give a Python file name")


def test_replay_stops_at_a_breakpoint_through_a_real_dap_client(shop: Path, captured: tuple[dict, dict]) -> None:
    """`replay --debugpy --wait-for-client`: a DAP client attaches (VS Code's handshake), the
    handler stops at the breakpoint with the captured event, and continuing finishes the replay."""
    from tests.harness.localcloud_dap import DapClient
    from tests.harness.moto_server import free_port

    order, _ = captured
    port = free_port()
    source = shop / "functions" / "shop" / "app.py"
    line = source.read_text().splitlines().index("    return {") + 1
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    out, err = shop / "replay.out", shop / "replay.err"  # files: debugpy's adapter process inherits pipes
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "plldb.cli", "replay", order["id"][:8], "--debugpy", "--debugpy-port",
             str(port), "--wait-for-client"],
            cwd=shop, env={**env, "PYTHONPATH": str(TESTS.parent), "COLUMNS": "200"}, stdout=stdout, stderr=stderr,
        )
    try:
        debugger = DapClient("127.0.0.1", port)
        try:
            assert debugger.attach({source: [line]})[source][0]["verified"]
            stopped = debugger.wait_event("stopped", timeout=60)
            assert stopped["reason"] == "breakpoint"
            frame = debugger.top_frame(stopped["threadId"])
            assert Path(frame["source"]["path"]).resolve() == source.resolve() and frame["line"] == line
            assert debugger.locals_of(frame["id"])["event"] == "{'items': ['tea', 'cake']}"
            debugger.request("continue", threadId=stopped["threadId"])
            process.wait(timeout=60)  # ends by itself, the debugger still attached
        finally:
            debugger.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.read_text()
    assert f"{order['id'][:8]} ShopFunction: same" in out.read_text()


def editor(tmp_path: Path, content: str) -> str:
    """An $EDITOR that saves ``content`` as the edited file."""
    script = tmp_path / "editor.sh"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{content}' > \"$1\"\n")
    script.chmod(0o755)
    return str(script)


def test_replay_edit_runs_the_saved_event(shop: Path, captured: tuple[dict, dict], tmp_path: Path) -> None:
    order, _ = captured
    result = plldb(["replay", order["id"][:8], "--edit"], shop,
                   env={"EDITOR": editor(tmp_path, '{"items": [1, 2, 3]}')})
    assert result.returncode == 1, result.stderr
    assert '-    "total": 6' in result.stdout and '+    "total": 9' in result.stdout
    assert "pricing 3 item(s)" in result.stderr


def test_replay_edit_to_malformed_json_runs_nothing(shop: Path, captured: tuple[dict, dict], tmp_path: Path) -> None:
    order, _ = captured
    result = plldb(["replay", order["id"][:8], "--edit"], shop, env={"EDITOR": editor(tmp_path, '{"items": [')})
    assert_error(result, "the edited event is not valid JSON (", "nothing was run")
    assert "pricing" not in result.stderr
