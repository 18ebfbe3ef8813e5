"""Pytest fixtures and helpers for tests of the helper Lambdas behind the gateway emulator.

Load them in a test module with ``pytest_plugins = ["tests.harness.gateway_fixtures"]``;
the plain helpers (``put_session``, ``scan``, ...) live in ``tests.harness.gateway_setup``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness.gateway import Gateway, GatewaySettings
from tests.harness.gateway_setup import HelperResources, provision
from tests.harness.moto_server import MotoServer


@pytest.fixture
def helper(aws: MotoServer) -> HelperResources:
    """The helper stack's tables, bucket and layer, in a freshly reset moto."""
    return provision()


@pytest.fixture
def make_gateway(aws: MotoServer, helper: HelperResources) -> Iterator[Callable[..., Gateway]]:
    """Start an emulator with settings overrides (e.g. ``grace_seconds=0.2``)."""
    started: list[Gateway] = []

    def make(**overrides: Any) -> Gateway:
        settings = GatewaySettings(
            moto_url=aws.url,
            layer_arn=helper.layer_arn,
            payload_bucket=helper.payload_bucket,
            grace_seconds=overrides.pop("grace_seconds", 0.2),
            **overrides,
        )
        gateway = Gateway(settings).start()
        started.append(gateway)
        return gateway

    yield make
    for gateway in reversed(started):
        gateway.stop()


@pytest.fixture
def gateway(make_gateway: Callable[..., Gateway]) -> Gateway:
    return make_gateway()
