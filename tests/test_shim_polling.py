"""The shim's wait schedule: a fast answer is seen at once, a held breakpoint costs little.

The back-off is checked on its own, then through ``Shim.handle`` in this process against
real moto tables and a real Runtime API emulator, with a simulated clock so that a
ten-minute breakpoint takes seconds: the number of DynamoDB reads is what is bounded.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace

import boto3
import pytest

from plldb import limits, naming
from plldb.layer import polling
from plldb.layer.cloud import Cloud, ShimConfig
from plldb.layer.loop import Shim, payload_url_seconds
from plldb.layer.runtime_api import RuntimeApi
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import HelperResources, provision, wait_until
from tests.harness.moto_server import MotoServer
from tests.harness.runtime_api import ERROR, SUCCESS, RuntimeApiEmulator

pytest_plugins = ["tests.harness.gateway_fixtures"]
pytestmark = pytest.mark.timeout(120)

FUNCTION_ENVIRONMENT = {"AWS_LAMBDA_FUNCTION_NAME": "polled-function", "_HANDLER": "app.handler"}


def test_payload_urls_live_until_the_deadline_plus_a_margin() -> None:
    """After the deadline the shim no longer waits and $default refuses the answer: a URL
    is useless then, so it lives no longer than that plus a margin for a late transfer."""
    now = 1_000.0
    margin = limits.PAYLOAD_URL_MARGIN_SECONDS
    assert payload_url_seconds(int((now + 30.2) * 1000), now) == 31 + margin
    assert payload_url_seconds(int((now - 5) * 1000), now) == margin
    assert payload_url_seconds(int((now + 10_000) * 1000), now) == limits.MAX_TIMEOUT + margin


def test_payload_urls_use_the_regional_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """In AWS (no custom endpoint) a URL names bucket.s3.<region>.amazonaws.com, never the
    global endpoint, whose redirects a PUT does not follow; SigV4 signs it."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # Lambda sets it (and AWS_REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    bucket = "plldb-core-infrastructure-eu-west-1-123456789012"
    cloud = Cloud(ShimConfig("s", "t", "d", "https://example.com", bucket, "fn"))
    cloud._owner = "AROAEXAMPLE:fn"  # what GetCallerIdentity answers in AWS (no network here)
    upload = cloud.result_upload("req-1", 60, "s")
    assert upload is not None
    assert upload["url"].startswith(
        f"https://{bucket}.s3.eu-west-1.amazonaws.com/payloads/AROAEXAMPLE%3Afn/s/req-1/"
    )
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in upload["url"]


def test_backoff_starts_fast_grows_and_caps() -> None:
    backoff = polling.Backoff()
    delays = [backoff.delay() for _ in range(40)]
    assert delays[0] == polling.FIRST_DELAY == 0.005
    assert all(b >= a for a, b in zip(delays, delays[1:], strict=False))
    assert max(delays) == polling.MAX_DELAY == 0.5
    assert sum(delays[:8]) < 0.25  # eight reads within the first quarter second
    backoff.reset()
    assert backoff.delay() == polling.FIRST_DELAY


@pytest.mark.parametrize(
    ("remaining", "margin"), [(900.0, 1.0), (10.0, 1.0), (3.0, 0.3), (0.5, 0.1)]
)
def test_deadline_margin_adapts_to_the_remaining_time(remaining: float, margin: float) -> None:
    assert polling.deadline_margin(remaining) == pytest.approx(margin)


class SimulatedTime:
    """A clock that only moves when the shim sleeps; ``at(t, action)`` runs an action then."""

    def __init__(self) -> None:
        self.now = time.time()
        self.start = self.now
        self.actions: list[tuple[float, Callable[[], None]]] = []

    def at(self, offset: float, action: Callable[[], None]) -> None:
        self.actions.append((self.start + offset, action))

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        for due, action in list(self.actions):
            if self.now >= due:
                self.actions.remove((due, action))
                action()


@pytest.fixture
def helper(aws: MotoServer) -> HelperResources:
    return provision()


@pytest.fixture
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator("polled-function", timeout_s=900) as api:
        yield api


def make_shim(aws: MotoServer, helper: HelperResources, emulator: RuntimeApiEmulator,
              clock: SimulatedTime, status: str = naming.ACTIVE, **item: dict) -> Shim:
    """A shim for an ACTIVE session; posts go to moto's management API (it accepts any).

    ``item`` adds attributes to the session item (DynamoDB JSON).
    """
    session_id = str(uuid.uuid4())
    boto3.client("dynamodb").put_item(
        TableName=helper.sessions_table,
        Item={
            naming.A_SESSION_ID: {"S": session_id},
            naming.A_STATUS: {"S": status},
            naming.A_CONNECTION_ID: {"S": "conn-1"},
            **item,
        },
    )
    config = ShimConfig(
        session_id=session_id,
        sessions_table=helper.sessions_table,
        debugger_table=helper.debugger_table,
        management_url=aws.url,
        payload_bucket=helper.payload_bucket,
        function_name="polled-function",
    )
    environ = {**FUNCTION_ENVIRONMENT, "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "t"}
    return Shim(config, RuntimeApi(emulator.address), Cloud(config), environ,
                clock=lambda: clock.now, sleep=clock.sleep)


def respond(request_id: str, result: str) -> Callable[[], None]:
    """What the ``$default`` route writes when the tool answers (the same update)."""

    def write() -> None:
        boto3.client("dynamodb").update_item(
            TableName=naming.DEBUGGER_TABLE,
            Key={naming.A_REQUEST_ID: {"S": request_id}},
            UpdateExpression="SET #s = :done, #r = :result",
            ExpressionAttributeNames={"#s": naming.A_STATUS, "#r": naming.A_RESPONSE},
            ExpressionAttributeValues={
                ":done": {"S": naming.REQUEST_RESPONDED},
                ":result": {"S": result},
            },
        )

    return write


@pytest.mark.parametrize(
    ("held", "max_item_reads", "max_session_reads"),
    [(0.05, 8, 1), (2.0, 18, 2), (600.0, 1230, 301)],
)
def test_reads_for_a_held_answer_are_bounded(
    aws: MotoServer, helper: HelperResources, emulator: RuntimeApiEmulator,
    held: float, max_item_reads: int, max_session_reads: int,
) -> None:
    clock = SimulatedTime()
    shim = make_shim(aws, helper, emulator, clock)
    invocation = emulator.submit('{"n": 1}', request_id=f"held-{held}")
    clock.at(held, respond(f"held-{held}", '{"ok": true}'))

    assert shim.handle(shim.api.next_invocation()) is True

    result = invocation.result(10)
    assert (result.status, result.json) == (SUCCESS, {"ok": True})
    seen_after = clock.now - clock.start
    assert held <= seen_after <= held + max(0.01, held * 0.5)  # seen within one back-off step
    assert shim.cloud.reads <= max_item_reads  # ~2 reads/s once at the cap, not thousands
    assert shim.cloud.session_reads <= max_session_reads  # one every 2 s
    if held >= 600:
        assert shim.cloud.reads / held < 2.1


def test_no_answer_gives_a_clear_error_before_the_deadline(
    aws: MotoServer, helper: HelperResources, emulator: RuntimeApiEmulator
) -> None:
    clock = SimulatedTime()
    shim = make_shim(aws, helper, emulator, clock)
    invocation = emulator.submit('{"n": 2}', timeout_s=30, request_id="never-answered")

    shim.handle(shim.api.next_invocation())

    result = invocation.result(10)
    assert result.status == ERROR
    assert result.error_type == naming.ERROR_NO_RESPONSE
    error = result.error
    assert error["errorType"] == naming.ERROR_NO_RESPONSE
    assert re.fullmatch(  # waited: 29 s plus the real time the set-up took (more under load)
        r"no response from the local debugger before the deadline \(waited \d+\.\d s; "
        r"answered 1\.0 s before the function's timeout\)",
        error["errorMessage"],
    ), error["errorMessage"]
    assert error["stackTrace"] == [] and error["requestId"] == "never-answered"
    # the expired request is deleted (nothing rests in the table), off the caller's path
    wait_until(lambda: "Item" not in boto3.client("dynamodb").get_item(
        TableName=helper.debugger_table, Key={naming.A_REQUEST_ID: {"S": "never-answered"}},
        ConsistentRead=True,
    ), timeout=20)


def test_an_answer_racing_the_deadline_wins(
    aws: MotoServer, helper: HelperResources, emulator: RuntimeApiEmulator
) -> None:
    """The answer lands between the last read and the EXPIRED write: it is delivered."""
    clock = SimulatedTime()
    shim = make_shim(aws, helper, emulator, clock)
    invocation = emulator.submit('{"n": 3}', timeout_s=5, request_id="raced")
    real_expire = shim.cloud.expire

    def expire_after_the_answer(request_id: str, session_id: str):  # type: ignore[no-untyped-def]
        respond(request_id, '"just in time"')()
        return real_expire(request_id, session_id)

    shim.cloud.expire = expire_after_the_answer  # type: ignore[method-assign]
    shim.handle(shim.api.next_invocation())

    assert invocation.result(10).json == "just in time"


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@pytest.mark.parametrize(
    ("status", "item", "reason"),
    [
        (naming.ACTIVE, {naming.A_TTL: {"N": str(int(time.time()) - 60)}},
         r"session is ACTIVE and past its TTL"),
        (naming.DISCONNECTED,
         {naming.A_DISCONNECTED_AT: {"S": iso(time.time() - 600)},
          naming.A_TTL: {"N": str(int(time.time()) + 3600)}},
         r"no debugger connected for \d+ s \(session DISCONNECTED, grace period 120 s\)"),
    ],
    ids=["ttl-expired", "disconnected-past-grace"],
)
def test_a_session_over_without_disconnect_passes_through_at_once(
    aws: MotoServer, helper: HelperResources, emulator: RuntimeApiEmulator,
    caplog: pytest.LogCaptureFixture, status: str, item: dict, reason: str,
) -> None:
    """DynamoDB keeps TTL-expired items for days, and $disconnect can be lost: neither
    makes an invocation wait for a debugger that is not coming back."""
    clock = SimulatedTime()
    shim = make_shim(aws, helper, emulator, clock, status, **item)
    emulator.submit('{"n": 4}', timeout_s=900, request_id="over")

    with caplog.at_level("INFO", logger="plldb.shim"):
        assert shim.handle(shim.api.next_invocation()) is False  # passed through

    assert clock.now - clock.start < 1
    assert re.search(f"{reason}: running app.handler in the cloud \\(pass-through\\)", caplog.text)


def test_a_wait_on_a_pending_session_is_capped_at_the_grace_period(
    aws: MotoServer, helper: HelperResources, emulator: RuntimeApiEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reconnect that never arrives (tool killed while offline) holds an invocation for
    the grace period at most, not until the raised timeout."""
    clock = SimulatedTime()
    shim = make_shim(aws, helper, emulator, clock, naming.PENDING,
                     **{naming.A_TTL: {"N": str(int(time.time()) + 300)}})
    emulator.submit('{"n": 5}', timeout_s=900, request_id="pending")

    with caplog.at_level("INFO", logger="plldb.shim"):
        assert shim.handle(shim.api.next_invocation()) is False

    assert 120 <= clock.now - clock.start <= 121
    assert "no debugger connected for 120 s (session PENDING, grace period 120 s) while " \
        "waiting: running app.handler in the cloud (pass-through)" in caplog.text


LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}
SHIM_GRANT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Resource": "*",
                   "Action": ["dynamodb:*", "execute-api:*", "s3:*"]}],
}


@pytest.fixture
def function_role(aws: MotoServer) -> Iterator[tuple[str, dict[str, str]]]:
    """A function role without any policy yet, its Lambda credentials, and IAM enforced."""
    iam = boto3.client("iam")
    arn = iam.create_role(RoleName="function-role",
                          AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))["Role"]["Arn"]
    credentials = aws.service_credentials(arn, "polled-function", 3600)
    aws.enforce_iam(True)
    try:
        yield arn, credentials
    finally:
        aws.enforce_iam(False)


def shim_with_role_credentials(aws: MotoServer, helper: HelperResources,
                               emulator: RuntimeApiEmulator, clock: SimulatedTime,
                               credentials: dict[str, str], gateway: Gateway,
                               monkeypatch: pytest.MonkeyPatch) -> Shim:
    """A shim whose AWS calls run with the function role's credentials, as in Lambda.

    Its posts go to the gateway emulator's management API (the call audit checks moto's).
    """
    shim = make_shim(aws, helper, emulator, clock)
    with monkeypatch.context() as env:
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.setenv(name, credentials[name])
        env.setattr(boto3, "DEFAULT_SESSION", None)  # a fresh process reads them anew
        shim.cloud = Cloud(replace(shim.config, management_url=gateway.management_url))
    return shim


def test_access_denied_right_after_attach_is_retried_until_the_grant_is_in_effect(
    aws: MotoServer, helper: HelperResources, emulator: RuntimeApiEmulator,
    function_role: tuple[str, dict[str, str]], gateway: Gateway,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimulatedTime()
    shim = shim_with_role_credentials(aws, helper, emulator, clock, function_role[1], gateway,
                                      monkeypatch)
    invocation = emulator.submit('{"n": 6}', timeout_s=60, request_id="refused-at-first")
    clock.at(5.0, lambda: boto3.client("iam").put_role_policy(  # the grant reaches DynamoDB
        RoleName="function-role", PolicyName=naming.SHIM_POLICY_NAME,
        PolicyDocument=json.dumps(SHIM_GRANT)))
    clock.at(10.0, respond("refused-at-first", '"debugged"'))  # after the retry

    assert shim.handle(shim.api.next_invocation()) is True

    assert invocation.result(10).json == "debugged"
    assert 10.0 <= clock.now - clock.start < 15


def test_access_still_denied_after_the_retries_runs_the_function_in_the_cloud(
    aws: MotoServer, helper: HelperResources, emulator: RuntimeApiEmulator,
    function_role: tuple[str, dict[str, str]], gateway: Gateway,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SimulatedTime()
    shim = shim_with_role_credentials(aws, helper, emulator, clock, function_role[1], gateway,
                                      monkeypatch)
    emulator.submit('{"n": 7}', timeout_s=60, request_id="always-refused")

    with caplog.at_level("INFO", logger="plldb.shim"):
        assert shim.handle(shim.api.next_invocation()) is False  # passed through

    assert polling.ACCESS_RETRY_SECONDS - polling.ACCESS_RETRY_MAX_DELAY \
        <= clock.now - clock.start <= polling.ACCESS_RETRY_SECONDS
    assert re.search(
        r"plldb's calls are still refused after \d+\.\d s \(AccessDeniedException: .*\); IAM "
        r"changes take a while to propagate: if this persists, the function's role lacks "
        r"PLLDBShimAccess: running app.handler in the cloud \(pass-through\)", caplog.text
    ), caplog.text
