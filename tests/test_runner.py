"""plldb.runner gives the same results, errors and context as awslambdaric.

Parity is checked two ways: end to end (the real awslambdaric runs a sample function against
the Runtime API emulator, the runner runs the very same files with the same headers and
environment, and the posted bodies are compared), and in process against awslambdaric's own
marshaller / context classes for the many small cases.
"""

from __future__ import annotations

import collections
import contextlib
import decimal
import enum
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from awslambdaric import bootstrap as ric_bootstrap
from awslambdaric.lambda_runtime_exception import FaultException
from awslambdaric.lambda_runtime_marshaller import Encoder as RicEncoder
from hypothesis import given, settings
from hypothesis import strategies as st

from plldb import runner
from tests.harness.container import launch
from tests.harness.fake_runtime.sample_functions import write_sample_code
from tests.harness.runtime_api import SUCCESS, InvocationResult, RuntimeApiEmulator

pytestmark = pytest.mark.timeout(60)

PY311_ENV = "AWS_Lambda_python3.11"  # ASCII-escaping encoder
PY312_ENV = "AWS_Lambda_python3.12"  # non-ASCII written as is


@pytest.fixture(scope="module")
def emulator() -> Iterator[RuntimeApiEmulator]:
    with RuntimeApiEmulator("parity", timeout_s=5.0) as emu:
        yield emu


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fixed container folder, so both sides see identical file paths in stack traces."""
    root = tmp_path_factory.mktemp("parity")
    write_sample_code(root / "code")
    return root


@contextlib.contextmanager
def task_root_on_path(task_root: Path) -> Iterator[None]:
    """Import the sample modules from the container's task root, then forget them."""
    before = set(sys.modules)
    sys.path.insert(0, str(task_root))
    try:
        yield
    finally:
        sys.path.remove(str(task_root))
        for name in set(sys.modules) - before:
            del sys.modules[name]


def both(emulator: RuntimeApiEmulator, workdir: Path, handler: str, event: bytes,
         execution_env: str = PY311_ENV) -> tuple[InvocationResult, dict[str, str], runner.Outcome]:
    """Run ``handler`` on ``event`` under awslambdaric and under the runner."""
    container = launch(emulator, workdir / "code", handler, workdir=workdir / "container",
                       function_name="parity", execution_env=execution_env, restart=False)
    try:
        result = emulator.invoke(event, request_id="req-parity", trace_id="Root=1-a-b;Sampled=0",
                                 cognito_identity='{"cognitoIdentityId": "i"}', wait_s=15)
        if not result.next_headers:  # init failed: awslambdaric posted to /init/error
            init_error = emulator.wait_init_error(5)
            assert init_error is not None, container.logs()
            emulator.init_errors.clear()
        headers = result.next_headers or {"Content-Type": "application/json",
                                          runner.H_REQUEST_ID: "req-parity",
                                          runner.H_DEADLINE_MS: str(int(time.time() * 1000) + 5000)}
        with task_root_on_path(container.task_root):
            outcome = runner.run_invocation(handler, event, headers, container.env)
        return result, container.env, outcome
    finally:
        container.stop()


def without_varying(body: bytes) -> bytes | dict:
    """An echo of the sample handler minus what depends on the clock or this process."""
    try:
        value = json.loads(body)
    except ValueError:
        return body
    if not isinstance(value, dict) or "remaining" not in value:
        return body
    return {k: v for k, v in value.items() if k not in ("remaining", "trace", "wrapped")}


# --- end to end parity -------------------------------------------------------------------


@pytest.mark.parametrize("handler", [
    "bad_import.handler", "app.missing", "nodot", "broken_syntax.handler",
    "raise_at_import.handler",
])
def test_init_errors_identical(emulator: RuntimeApiEmulator, workdir: Path, handler: str) -> None:
    result, _, outcome = both(emulator, workdir, handler, b"{}")

    assert outcome.init_error and not outcome.ok
    assert outcome.error == result.error  # type, message, requestId "" and stackTrace, exactly
    assert outcome.body == result.body


def test_handler_error_identical(emulator: RuntimeApiEmulator, workdir: Path) -> None:
    result, _, outcome = both(emulator, workdir, "app.handler", b'{"mode": "raise", "n": 3}')

    assert result.error["stackTrace"] and len(result.error["stackTrace"]) == 2
    assert outcome.error == result.error
    assert outcome.body == result.body
    assert outcome.error_type == "ValueError"


def test_wrong_handler_signature_same_shape(emulator: RuntimeApiEmulator, workdir: Path) -> None:
    """When the call itself fails, each side shows its own calling frame (one line)."""
    result, _, outcome = both(emulator, workdir, "app.no_args", b"{}")

    expected, actual = result.error, outcome.error
    assert actual["errorType"] == expected["errorType"] == "TypeError"
    assert actual["errorMessage"] == expected["errorMessage"]
    assert len(actual["stackTrace"]) == len(expected["stackTrace"]) == 1
    assert "handler_fn(" in actual["stackTrace"][0]


@pytest.mark.parametrize("event", [
    b'{"mode": "value", "name": "set"}',
    b'{"mode": "value", "name": "datetime"}',
    b'{"mode": "value", "name": "tuple_key"}',
    b'{"mode": "value", "name": "decimal"}',
    b'{"mode": "value", "name": "nested_bytes"}',
    b'{"mode": "value", "name": "nan"}',
    b'{"mode": "bytes"}',
    b'"just a string"',
    b'[1.5, 1e400, 123456789012345678901234567890, "\\u00e9", {"a": null, "a": 2}]',
])
def test_results_identical(emulator: RuntimeApiEmulator, workdir: Path, event: bytes) -> None:
    result, _, outcome = both(emulator, workdir, "app.handler", event)

    assert outcome.ok == (result.status == SUCCESS)
    assert without_varying(outcome.body) == without_varying(result.body)
    assert outcome.content_type == result.content_type


def test_invalid_event_is_an_unmarshal_error(emulator: RuntimeApiEmulator, workdir: Path) -> None:
    """Lambda's Invoke refuses invalid JSON, so this only happens with a non-AWS caller; the
    parser's own wording after the prefix may differ (simplejson vs the standard library)."""
    result, _, outcome = both(emulator, workdir, "app.handler", b"{not json")

    prefix = "Unable to unmarshal input: Expecting property name enclosed in double quotes"
    assert outcome.error["errorType"] == result.error["errorType"] == "Runtime.UnmarshalError"
    assert outcome.error["errorMessage"].startswith(prefix)
    assert result.error["errorMessage"].startswith(prefix)
    assert outcome.error["stackTrace"] == result.error["stackTrace"] == []
    assert outcome.error["requestId"] == result.error["requestId"] == "req-parity"


@pytest.mark.parametrize("execution_env", [PY311_ENV, PY312_ENV])
def test_unicode_encoding_follows_the_runtime_version(emulator: RuntimeApiEmulator,
                                                      workdir: Path, execution_env: str) -> None:
    result, _, outcome = both(emulator, workdir, "app.handler",
                              b'{"mode": "value", "name": "unicode"}', execution_env)

    assert outcome.body == result.body
    assert (b"\\u00e9" in outcome.body) == (execution_env == PY311_ENV)


def test_context_identical(emulator: RuntimeApiEmulator, workdir: Path) -> None:
    result, _, outcome = both(emulator, workdir, "app.handler", b'{"k": 1}')

    actual = without_varying(outcome.body)
    assert actual == without_varying(result.body)
    assert actual["identity"] == ["i", None]
    assert actual["memory"] == "128" and actual["function_name"] == "parity"


# --- context --------------------------------------------------------------------------------

ENVIRON = {
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/f",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]abc",
    "AWS_LAMBDA_FUNCTION_NAME": "f",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_LAMBDA_FUNCTION_VERSION": "7",
}
CLIENT_CONTEXT = json.dumps({
    "custom": {"a": 1}, "env": {"platform": "x"},
    "client": {"installation_id": "inst", "app_title": "t"},
    "w3c": {"traceparent": "00-abc", "tracestate": 5, "other": "dropped"},
})
IDENTITY = json.dumps({"cognitoIdentityId": "id", "cognitoIdentityPoolId": "pool"})
ARN = "arn:aws:lambda:us-east-1:123456789012:function:f:7"


@pytest.mark.parametrize(("client_context", "identity"), [(CLIENT_CONTEXT, IDENTITY), (None, None)])
def test_context_matches_awslambdaric(monkeypatch: pytest.MonkeyPatch,
                                      client_context: str | None, identity: str | None) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    deadline = int(time.time() * 1000) + 1500
    expected = ric_bootstrap.create_lambda_context(client_context, identity, deadline, "req", ARN,
                                                   "tenant")

    context = runner.build_context("req", deadline, ARN, client_context, identity,
                                   dict(ENVIRON), tenant_id="tenant")

    assert repr(context).replace("LambdaContext", "") == repr(expected).replace("LambdaContext", "")
    assert context.w3c() == expected.w3c() == ({"traceparent": "00-abc"} if client_context else {})
    for name in ("aws_request_id", "log_group_name", "log_stream_name", "function_name",
                 "memory_limit_in_mb", "function_version", "invoked_function_arn", "tenant_id"):
        assert getattr(context, name) == getattr(expected, name)
    assert 1300 < context.get_remaining_time_in_millis() <= 1500
    if client_context:
        assert context.client_context.custom == {"a": 1}
        assert context.client_context.client.app_version_name is None
        assert context.identity.cognito_identity_pool_id == "pool"
    else:
        assert context.client_context is None and context.identity.cognito_identity_id is None


def test_remaining_time_never_negative() -> None:
    context = runner.build_context("r", int(time.time() * 1000) - 10, ARN, None, None, {})

    assert context.get_remaining_time_in_millis() == 0


@pytest.mark.parametrize(("client_context", "identity", "name"), [
    ("{bad", None, "Client Context"), (None, "[1,", "Cognito Identity")])
def test_unparseable_context_header(client_context: str | None, identity: str | None,
                                    name: str) -> None:
    with pytest.raises(FaultException) as expected:
        ric_bootstrap.create_lambda_context(client_context, identity, 0, "r", ARN, None)
    with pytest.raises(runner.RuntimeFault) as actual:
        runner.build_context("r", 0, ARN, client_context, identity, {})

    assert actual.value.error["errorType"] == expected.value.exception_type
    assert actual.value.error["errorMessage"] == expected.value.msg
    assert name in expected.value.msg


def test_context_header_error_becomes_the_invocation_error() -> None:
    headers = {runner.H_REQUEST_ID: "r1", runner.H_DEADLINE_MS: "0",
               runner.H_CLIENT_CONTEXT: "{bad", "Content-Type": "application/json"}

    outcome = runner.run_invocation(lambda event, context: 1, b"{}", headers, {})

    assert not outcome.ok and not outcome.init_error
    assert outcome.error["errorType"] == "Runtime.LambdaContextUnmarshalError"
    assert outcome.error["requestId"] == "r1"


# --- loading --------------------------------------------------------------------------------


def test_builtin_module_conflict_like_awslambdaric() -> None:
    with pytest.raises(FaultException) as expected:
        ric_bootstrap._get_handler("sys.handler")
    with pytest.raises(runner.HandlerLoadError) as actual:
        runner.load_handler("sys.handler")

    assert actual.value.error == ric_bootstrap.make_error(expected.value.msg,
                                                          expected.value.exception_type, None)


def test_import_hook_receives_the_dotted_module_name() -> None:
    seen: list[str] = []
    module = ModuleType("pkg.mod")
    module.fn = lambda event, context: event  # type: ignore[attr-defined]

    def import_module(name: str) -> ModuleType:
        seen.append(name)
        return module

    assert runner.load_handler("pkg/mod.fn", import_module) is module.fn  # type: ignore[attr-defined]
    assert seen == ["pkg.mod"]


def test_base_exceptions_are_not_swallowed() -> None:
    def leave(event: object, context: object) -> None:
        raise SystemExit(2)

    context = runner.build_context("r", 0, ARN, None, None, {})
    with pytest.raises(SystemExit):
        runner.run_handler(leave, b"{}", context)


def test_raw_event_when_not_json() -> None:
    context = runner.build_context("r", 0, ARN, None, None, {})

    outcome = runner.run_handler(lambda event, ctx: event, b'"x"', context, "text/plain")

    assert outcome.ok and outcome.body == b'"x"' and outcome.content_type == "application/unknown"


def test_error_log_text_matches_awslambdaric(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        error = runner.error_from_exception(exc, "r")
    ric_bootstrap.log_error(error, ric_bootstrap.StandardLogSink())

    assert runner.error_log_text(error) == capsys.readouterr().out


def test_set_trace_id() -> None:
    environ: dict[str, str] = {}
    runner.set_trace_id("Root=1", environ)
    assert environ == {runner.TRACE_ENV: "Root=1"}
    runner.set_trace_id(None, environ)
    assert environ == {}


# --- JSON encoding --------------------------------------------------------------------------


def ric_encode(value: object, execution_env: str) -> tuple[bool, str]:
    """awslambdaric's encoding of ``value`` (its encoder reads AWS_EXECUTION_ENV when built)."""
    saved = os.environ.get("AWS_EXECUTION_ENV")
    os.environ["AWS_EXECUTION_ENV"] = execution_env
    try:
        encoder = RicEncoder()
    finally:
        if saved is None:
            del os.environ["AWS_EXECUTION_ENV"]
        else:
            os.environ["AWS_EXECUTION_ENV"] = saved
    try:
        return True, encoder.encode(value)
    except Exception as exc:
        return False, str(exc)


def plldb_encode(value: object, execution_env: str) -> tuple[bool, str]:
    try:
        return True, runner.to_json(value, {"AWS_EXECUTION_ENV": execution_env})
    except Exception as exc:
        return False, str(exc)


class Color(enum.IntEnum):
    RED = 1


class Shade(str, enum.Enum):
    DARK = "dark"


class Fraction(float):
    pass


class AsDict:
    def _asdict(self) -> dict:
        return {"as": "dict"}


class BadAsDict:
    def _asdict(self) -> list:
        return [1]


Point = collections.namedtuple("Point", "x y")


def _circular() -> list:
    value: list = []
    value.append(value)
    return value


def _deep() -> list:
    value: list = []
    cursor = value
    for _ in range(5000):
        cursor.append([])
        cursor = cursor[0]
    return value


EDGE_VALUES = [
    None, True, False, 0, -1, 2**80, 1.5, -0.0, 1e300, float("nan"), float("inf"), float("-inf"),
    "", "plain", "caf\u00e9 \u2028 \x00 \x7f \" \\ /", "\ud83d\ude00", b"bytes", b"\xff",
    decimal.Decimal("1.10"), decimal.Decimal("-NaN"), decimal.Decimal("Infinity"),
    decimal.Decimal("1E+2"), [decimal.Decimal("0.000001")], {"a": decimal.Decimal("3")},
    Color.RED, Shade.DARK, Fraction(2.5), Point(1, 2), [Point(1, [2])], AsDict(), BadAsDict(),
    (1, (2, 3)), {"k": (1,)}, collections.OrderedDict(b=1, a=2),
    {1: "int", 1.5: "float", None: "none", False: "bool", b"k": "bytes", Color.RED: "enum"},
    {(1, 2): "tuple"}, {decimal.Decimal(1): "decimal"}, {1, 2}, frozenset(), range(2),
    (x for x in ()), object(), _circular(), {"a": {"b": {}}}, _deep(),
]


@pytest.mark.parametrize("execution_env", [PY311_ENV, PY312_ENV])
@pytest.mark.parametrize("value", EDGE_VALUES, ids=lambda v: type(v).__name__)
def test_encoding_edge_cases_match_awslambdaric(value: object, execution_env: str) -> None:
    assert plldb_encode(value, execution_env) == ric_encode(value, execution_env)


def test_marshal_error_message() -> None:
    with pytest.raises(runner.RuntimeFault) as fault:
        runner.marshal_response({"when": decimal.Context()})

    assert fault.value.error["errorType"] == "Runtime.MarshalError"
    assert fault.value.error["errorMessage"] == (
        "Unable to marshal response: Object of type Context is not JSON serializable")


_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text()
            | st.decimals() | st.text().map(lambda t: t.encode("utf-8", "surrogatepass"))
            | st.binary(max_size=4))
_KEYS = (st.text() | st.integers() | st.floats() | st.booleans() | st.none()
         | st.decimals(allow_nan=False))
_VALUES = st.recursive(_SCALARS, lambda inner: (
    st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
    | st.dictionaries(_KEYS, inner, max_size=4) | st.frozensets(st.integers(), max_size=2)),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(value=_VALUES, execution_env=st.sampled_from([PY311_ENV, PY312_ENV]))
def test_encoding_matches_awslambdaric_on_random_values(value: object, execution_env: str) -> None:
    assert plldb_encode(value, execution_env) == ric_encode(value, execution_env)
