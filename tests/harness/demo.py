"""`make demo`: the whole PLLDB round trip on this machine, with no AWS account.

Starts the local cloud (tests/harness/localcloud.py), runs ``plldb attach`` as a real
subprocess in tests/test_stack with the local cloud's environment (exactly as a user runs
it against AWS), invokes each test-stack function a few times through Lambda's ``Invoke``
API and shows what a user sees: the event sent, the result returned from "the cloud", and
plldb's own live lines. Then Ctrl-C (SIGINT) to plldb, which restores the stack, and the
local cloud is stopped and cleaned up.

``--interactive`` keeps everything running with ``plldb attach --debugpy`` and prints how
to attach VS Code or PyCharm and the command that triggers an invocation
(``python -m tests.harness.demo invoke HelloFunction '{"name": "Ada"}' --state-dir DIR``),
until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from tests.harness.localcloud import (
    REPO_ROOT,
    STATE_FILE,
    TEST_STACK_DIR,
    TEST_STACK_NAME,
    LocalCloud,
    LocalCloudSettings,
)
from tests.harness.localcloud_attach import ATTACHED_MARKER, PlldbProcess
from tests.harness.moto_server import REGION, free_port

GRACE_SECONDS = 10.0
PLLDB_PREFIX = "  plldb │ "
EVENTS = {
    "HelloFunction": [{"name": "Ada"}, {"name": "Grace"}, {"name": "Linus"}],
    "EchoFunction": [{"order": 1, "items": ["tea", "scones"]}, {"order": 2, "items": []}],
}


def say(text: str = "") -> None:
    print(text, flush=True)


def interrupt(plldb: PlldbProcess) -> int:
    """Ctrl-C to plldb; ours are ignored meanwhile (a second one would skip the restore)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return plldb.interrupt()


def invoke(functions: dict[str, str], logical_id: str, event: Any) -> None:
    """One Invoke through the local cloud's Lambda endpoint, shown as a user sees it."""
    say(f"→ invoke {logical_id} with {json.dumps(event)}")
    started = time.monotonic()
    response = boto3.client("lambda").invoke(
        FunctionName=functions[logical_id], Payload=json.dumps(event).encode()
    )
    payload = response["Payload"].read().decode()
    elapsed = (time.monotonic() - started) * 1000
    error = response.get("FunctionError")
    status = f"error ({error})" if error else "ok"
    say(f"← {status} in {elapsed:.0f} ms: {payload}")


def show_configuration(functions: dict[str, str], title: str) -> None:
    """Layers, exec wrapper and timeout of each function, as the cloud holds them."""
    say(title)
    lam = boto3.client("lambda")
    for logical_id, name in functions.items():
        config = lam.get_function_configuration(FunctionName=name)
        layers = [layer["Arn"].split(":")[6] for layer in config.get("Layers") or []]
        variables = (config.get("Environment") or {}).get("Variables") or {}
        wrapper = variables.get("AWS_LAMBDA_EXEC_WRAPPER", "none")
        say(
            f"   {logical_id}: layers {layers or 'none'}, exec wrapper {wrapper}, "
            f"timeout {config['Timeout']} s"
        )


@contextmanager
def local_cloud(state_dir: Path | None) -> Iterator[LocalCloud]:
    say("Starting the local cloud (moto, helper stack, gateway emulator, Lambda runtime)…")
    started = time.monotonic()
    settings = LocalCloudSettings(grace_seconds=GRACE_SECONDS, progress=lambda line: None)
    cloud = LocalCloud(settings, state_dir).start()
    try:
        say(f"Local cloud ready in {time.monotonic() - started:.1f} s:")
        say(f"   AWS_ENDPOINT_URL={cloud.environment['AWS_ENDPOINT_URL']}  (moto)")
        say(f"   AWS_ENDPOINT_URL_LAMBDA={cloud.environment['AWS_ENDPOINT_URL_LAMBDA']}")
        say(f"   helper stack 'plldb': WebSocket API {cloud.urls['websocket']}")
        say(f"   {TEST_STACK_NAME}: {', '.join(cloud.functions)}")
        with cloud.environ():
            yield cloud
    finally:
        say("Stopping the local cloud…")
        stopped = cloud.stop()
        say(f"Stopped {', '.join(stopped)}; temporary folders removed.")


def run_demo(rounds: int) -> int:
    with local_cloud(None) as cloud:
        show_configuration(cloud.functions, "Before attaching:")
        say(
            f"\n$ cd tests/test_stack && plldb attach   (stack {TEST_STACK_NAME} from samconfig.toml)"
        )
        plldb = PlldbProcess(["attach"], TEST_STACK_DIR, cloud.environment, PLLDB_PREFIX)
        try:
            plldb.wait_for(ATTACHED_MARKER)
            show_configuration(cloud.functions, "\nWhile attached:")
            say("\nInvoking the functions in the (local) cloud; their handlers run in plldb:")
            for _ in range(rounds):
                for logical_id, events in EVENTS.items():
                    for event in events:
                        invoke(cloud.functions, logical_id, event)
                        time.sleep(0.2)  # lets plldb's line for it appear next to it
        finally:
            say("\nCtrl-C to plldb:")
            code = interrupt(plldb)
        say(f"plldb exited with {code}")
        show_configuration(cloud.functions, "After detaching:")
        invoke(cloud.functions, "HelloFunction", {"name": "after detach"})
        say("(answered by the function's own code in the cloud again)")
    return code


def run_interactive(state_dir: Path | None) -> int:
    """Attached with --debugpy until Ctrl-C; the state folder lets `invoke` find the cloud."""
    own_state_dir = state_dir is None
    state_dir = Path(tempfile.mkdtemp(prefix="plldb-demo-")) if state_dir is None else state_dir
    try:
        return _interactive(state_dir)
    finally:
        if own_state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)


def _interactive(state_dir: Path) -> int:
    debugpy_port = free_port()
    with local_cloud(state_dir) as cloud:
        args = ["attach", "--debugpy", "--debugpy-port", str(debugpy_port)]
        say(f"\n$ cd tests/test_stack && plldb {' '.join(args)}")
        plldb = PlldbProcess(args, TEST_STACK_DIR, cloud.environment, PLLDB_PREFIX)
        try:
            plldb.wait_for(ATTACHED_MARKER)
            print_instructions(state_dir, debugpy_port, plldb.process.pid)
            while plldb.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            say("\nCtrl-C: detaching…")
        finally:
            code = interrupt(plldb)
        say(f"plldb exited with {code}")
    return code


def print_instructions(state_dir: Path, port: int, pid: int) -> None:
    hello = TEST_STACK_DIR / "functions" / "hello" / "app.py"
    invoke_command = (
        f"{shlex.quote(sys.executable)} -m tests.harness.demo invoke HelloFunction "
        f'\'{{"name": "Ada"}}\' --state-dir {shlex.quote(str(state_dir))}'
    )
    say(
        f"""
Ready. plldb runs the test stack's handlers on this machine, under debugpy (port {port}).

1. Set a breakpoint in {hello.relative_to(REPO_ROOT)} (the line building "greeting").
2. Attach a debugger:
   • VS Code: Run and Debug → "Python Debugger: Remote Attach", host 127.0.0.1, port {port}
     (or the launch.json printed above).
   • PyCharm: Run → Attach to Process… → pick the process {pid} ("plldb attach").
3. Trigger an invocation from another terminal, in {REPO_ROOT}:
   {invoke_command}
   The debugger stops at your breakpoint; continue, and the result prints there.
   Any AWS tool works too with plldb's identity (IAM enforced: the developer policy):
   eval "$({shlex.quote(sys.executable)} -m tests.harness.localcloud env --state-dir {shlex.quote(str(state_dir))})"

Ctrl-C here detaches (the functions are restored) and stops the local cloud.
"""
    )


def invoke_from_state(state_dir: Path, logical_id: str, event_text: str) -> int:
    """The `invoke` subcommand: one invocation through a running demo's local cloud."""
    state = json.loads((state_dir / STATE_FILE).read_text())
    functions = state["stacks"][TEST_STACK_NAME]
    if logical_id not in functions:
        say(f"unknown function {logical_id!r}; choose from {', '.join(functions)}")
        return 2
    env = state["harness_environment"]  # the caller is not plldb: any identity may invoke
    client = boto3.client(
        "lambda",
        endpoint_url=env["AWS_ENDPOINT_URL_LAMBDA"],
        region_name=REGION,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
        config=botocore.config.Config(read_timeout=900, retries={"max_attempts": 1}),
    )
    response = client.invoke(FunctionName=functions[logical_id], Payload=event_text.encode())
    say(response["Payload"].read().decode())
    return 1 if response.get("FunctionError") else 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C and SIGTERM both detach and clean up (a demo started in the background of a
    # non-interactive shell would otherwise inherit SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description="PLLDB demo on a local cloud (no AWS account).")
    parser.add_argument("command", nargs="?", choices=["run", "invoke"], default="run")
    parser.add_argument("function", nargs="?", default="HelloFunction")
    parser.add_argument("event", nargs="?", default="{}")
    parser.add_argument("--interactive", action="store_true", help="keep running with --debugpy")
    parser.add_argument("--rounds", type=int, default=1, help="invocations per event")
    parser.add_argument("--state-dir", type=Path, help="local cloud state (invoke: required)")
    args = parser.parse_args(argv)
    if args.command == "invoke":
        if args.state_dir is None:
            parser.error("invoke needs --state-dir (printed by the interactive demo)")
        return invoke_from_state(args.state_dir, args.function, args.event)
    try:
        if args.interactive:
            return run_interactive(args.state_dir)
        return run_demo(args.rounds)
    except KeyboardInterrupt:  # during start-up or the invocations: cleaned up already
        say("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
