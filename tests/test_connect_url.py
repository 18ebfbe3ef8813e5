"""The URL `plldb attach` opens is held to API Gateway's 4,096 characters, before anything
changes.

API Gateway's quota table for WebSocket APIs: "Length, in characters, of the URL for a
WebSocket API: 4096" (Quotas for configuring and running a WebSocket API in API Gateway).
The gateway emulator refuses a longer URL before its authorizer runs (414).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from plldb import naming
from plldb.cloud.aws import AwsContext
from plldb.cloud.helper_stack import HelperStack
from plldb.lambdas import connect_options
from plldb.session.attach import Attachment
from plldb.session.connect_url import ConnectUrlTooLong, check_length, connect_url
from plldb.session.plan import AttachOptions, AttachPlan
from tests.harness.gateway import Gateway

pytest_plugins = ["tests.harness.gateway_fixtures"]

URL = "wss://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/prod"
SESSION = "0" * 8 + "-0000-4000-8000-" + "0" * 12
# Fifty globs of 140 characters: what the authorizer's own check admits, at its limits.
GLOBS = [f"{i:02}" + "Fn*" * 46 for i in range(connect_options.MAX_FUNCTION_GLOBS)]


def _query(globs: list[str]) -> dict[str, str]:
    return {"sessionId": SESSION, naming.Q_STACK_NAME: "shop", naming.Q_FUNCTIONS: ",".join(globs)}


def test_globs_the_authorizer_admits_can_exceed_the_url_limit() -> None:
    assert all(len(g) == 140 and connect_options._FUNCTION_GLOB.match(g) for g in GLOBS)
    assert len(connect_url(URL, _query(GLOBS))) > 4096


def test_the_error_names_the_globs_to_shorten() -> None:
    with pytest.raises(ConnectUrlTooLong) as refused:
        check_length(URL, _query(GLOBS))
    message = str(refused.value)
    length = len(connect_url(URL, _query(GLOBS)))
    head = (
        f"the WebSocket URL would be {length} characters, {length - 4096} over API Gateway's "
        "4096-character limit: shorten or drop these --function globs ("
    )
    assert message.startswith(head)
    named = re.search(r"percent-encoded\): (.*); a glob such as", message)
    assert named, message
    chosen = named.group(1).split(", ")
    # dropping exactly those makes the URL fit, and one fewer would not
    assert len(connect_url(URL, _query([g for g in GLOBS if g not in chosen]))) <= 4096
    assert len(connect_url(URL, _query([g for g in GLOBS if g not in chosen[:-1]]))) > 4096
    assert message.endswith("a glob such as 'Orders*' matches many functions in few characters")
    check_length(URL, _query(GLOBS[:5]))  # fits: nothing raised


def test_a_by_name_session_too_long_is_told_to_debug_fewer_functions() -> None:
    query = {"sessionId": SESSION, naming.Q_STACK_NAME: "k", naming.Q_NAMES: ",".join(GLOBS)}
    with pytest.raises(ConnectUrlTooLong, match="debug fewer functions per session$"):
        check_length(URL, query)


def test_attach_refuses_before_claiming_or_connecting(tmp_path: Path) -> None:
    """No AWS call is made: the region's endpoints are never reached (no credentials here)."""
    ctx = AwsContext(region="us-east-1")
    fields = {name: name for name in HelperStack.__dataclass_fields__}
    helper = HelperStack(**{**fields, "websocket_url": URL})
    plan = AttachPlan(helper=helper, functions={}, caller_arn="arn:me", debugger_ctx=ctx,
                      function_filters=tuple(GLOBS))  # as plan_attach resolves --function
    options = AttachOptions(stack_name="shop", template=tmp_path, functions=tuple(GLOBS))
    attachment = Attachment(ctx, options, plan)
    attachment.session_id = SESSION
    with pytest.raises(ConnectUrlTooLong):
        asyncio.run(attachment.claim_and_connect())
    assert attachment.connection is None


def test_the_local_gateway_refuses_a_url_over_the_limit(gateway: Gateway) -> None:
    url = connect_url(gateway.websocket_url, _query(GLOBS))
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10)
    assert refused.value.response.status_code == 414
