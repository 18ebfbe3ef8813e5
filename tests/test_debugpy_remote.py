"""debugpy reachable from other machines only when asked for, with a warning: whoever
connects to it runs code in plldb, which holds the functions' credentials and events."""

from __future__ import annotations

import json

import pytest

from plldb.local.debuggers import is_loopback
from tests.harness.moto_server import free_port
from tests.test_invoke import TEST_STACK, plldb

COMMANDS = {
    "attach": ["attach", "--stack-name", "x"],
    "invoke": ["invoke", "HelloFunction"],
    "replay": ["replay", "abcd"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_non_loopback_debugpy_host_needs_the_flag(command: str) -> None:
    result = plldb([*COMMANDS[command], "--debugpy", "--debugpy-host", "0.0.0.0"], TEST_STACK)
    assert result.returncode == 2, result.stderr
    text = " ".join(result.stderr.split())
    assert ("--debugpy-host 0.0.0.0 is not a loopback address: anyone who reaches it could run code "
            "in plldb, with the functions' credentials. Use 127.0.0.1 (and an SSH tunnel to reach it "
            "from elsewhere), or add --debugpy-allow-remote if you mean it") in text


def test_with_the_flag_it_listens_there_and_warns() -> None:
    result = plldb(["invoke", "HelloFunction", "--debugpy", "--debugpy-host", "0.0.0.0",
                    "--debugpy-port", str(free_port()), "--debugpy-allow-remote"], TEST_STACK)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["function"] == "hello"
    assert ("warning: debugpy listens on 0.0.0.0, not only on this machine: whoever reaches that "
            "address can run code in plldb") in " ".join(result.stderr.split())


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("my-laptop.local", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
