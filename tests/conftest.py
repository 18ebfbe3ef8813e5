"""Shared fixtures: a real moto server process, and an environment pointing boto3 at it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.moto_server import MotoServer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A clean moto state and this process's boto3 pointed at it via AWS_ENDPOINT_URL."""
    moto_server.reset()
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name == "AWS_PROFILE":
            monkeypatch.delenv(name)
    for name, value in moto_server.environment().items():
        monkeypatch.setenv(name, value)
    yield moto_server
