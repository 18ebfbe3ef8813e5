"""The shim's standard-library DynamoDB reader (plldb/layer/table_reader.py, sigv4.py).

Against the project's real moto server with IAM enforced: the launcher verifies every
request's SigV4 signature and the signer's policies, so a read that succeeds was signed
right. The credentials are those Lambda gives a function (a role session issued to
``lambda.amazonaws.com``) and an IAM user's key pair. Faults moto cannot produce
(throttling, 5xx, a bad checksum, silence, a full listen queue) come from small real
servers on 127.0.0.1; several of them relay to moto, so that a retry ends in a real read.

Where the reader claims to do as botocore does (endpoints, proxies, error codes, the
signature) the test asks botocore itself, through the same real parts.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.session
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plldb import naming
from plldb.layer import sigv4, table_reader
from plldb.layer.sigv4 import Credentials
from plldb.layer.table_reader import TableReadError, read_item
from tests.harness import execution_egress, http_relay
from tests.harness.iam_audit import expect_refusal
from tests.harness.moto_server import FAKE_CREDENTIALS, REGION, MotoServer, free_port
from tests.harness.principals import Principal, create_user

pytestmark = pytest.mark.timeout(120)

ACCOUNT = "123456789012"  # moto's
TABLE = "PLLDBRoutes"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}"
KEY = {naming.A_SESSION_ID: {"S": "STACK#shop"}}
ITEM = {  # a route table's shape, with every type DynamoDB JSON has
    **KEY,
    naming.A_MODE: {"S": naming.MODE_SHARED},
    naming.A_ROUTES: {
        "M": {
            "s-1": {
                "M": {
                    naming.R_ROUTES: {"L": [{"S": "orders-*"}, {"S": "HelloFunction"}]},
                    naming.R_AT: {"N": "1700000000123"},
                    naming.R_BY: {"S": "arn:aws:iam::123456789012:user/dev"},
                    naming.R_MIRROR: {"BOOL": False},
                }
            },
            "s-2": {"M": {naming.R_ROUTES: {"L": []}, naming.R_MIRROR: {"BOOL": True}}},
        }
    },
    "Precise": {"N": "-12345678901234567890.123456789"},
    "Nothing": {"NULL": True},
    "Blob": {"B": b"\x00\xffroute"},
    "Blobs": {"BS": [b"\x01", b"\x02"]},
    "Names": {"SS": ["a", "\u00e9t\u00e9 \u65e5\u672c"]},
    "Numbers": {"NS": ["1", "2.5"]},
}
LAMBDA_ASSUMES = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}}
TRUST_LAMBDA = {
    "Version": "2012-10-17",
    "Statement": [{**LAMBDA_ASSUMES, "Action": "sts:AssumeRole"}],
}
FAST_FAILURE_S = 10.0  # three refused connections and their back-off take well under a second


def _policy(actions: list[str], **condition: dict[str, str]) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": actions, "Resource": TABLE_ARN}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def _function_role(
    server: MotoServer, iam: Any, name: str, policy: dict[str, Any]
) -> dict[str, str]:
    """A function's execution role holding ``policy``, and the credentials Lambda gives it."""
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_LAMBDA))
    iam.put_role_policy(RoleName=name, PolicyName="read-routes", PolicyDocument=json.dumps(policy))
    issued = server.service_credentials(role["Role"]["Arn"], name, 3600)
    return {
        k: issued[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    }


@dataclass(frozen=True)
class World:
    """The table with its item, and who reads it, on a moto server that enforces IAM."""

    server: MotoServer
    function: dict[str, str]  # a function role's environment credentials (with a token)
    in_function_only: dict[str, str]  # one whose GetItem must come from its environment
    reader: Principal  # an IAM user allowed dynamodb:GetItem (no token)
    writer: Principal  # an IAM user allowed dynamodb:PutItem only

    def environ(self, credentials: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
        """A function's environment pointing at moto (by default, the function role's)."""
        base = {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.server.url,
        }
        return {**base, **(credentials or self.function), **extra}

    def dynamodb(self, credentials: dict[str, str], endpoint_url: str | None = None) -> Any:
        """boto3's client with the same credentials: what the reader must equal."""
        return boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url or self.server.url,
            region_name=REGION,
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
            config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 1}),
        )


@pytest.fixture(scope="module")
def world(moto_server: MotoServer) -> Iterator[World]:
    moto_server.reset()
    admin = boto3.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )
    dynamodb = admin.client("dynamodb", endpoint_url=moto_server.url)
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": naming.A_SESSION_ID, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": naming.A_SESSION_ID, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(TableName=TABLE, Item=ITEM)
    iam = admin.client("iam", endpoint_url=moto_server.url)
    function = _function_role(moto_server, iam, "routed-function", _policy(["dynamodb:GetItem"]))
    from_inside = {"Null": {execution_egress.SOURCE_FUNCTION_KEY: "false"}}
    in_function_only = _function_role(
        moto_server, iam, "egress-function", _policy(["dynamodb:GetItem"], **from_inside)
    )
    reader = create_user(iam, "route-reader", _policy(["dynamodb:GetItem"]))
    writer = create_user(iam, "route-writer", _policy(["dynamodb:PutItem"]))
    moto_server.enforce_iam()
    try:
        yield World(moto_server, function, in_function_only, reader, writer)
    finally:
        moto_server.reset()


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy unless a test sets one (a developer's shell may hold some)."""
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)


def _failure(call: Callable[[], Any]) -> TableReadError:
    with pytest.raises(TableReadError) as caught:
        call()
    return caught.value


def _boto3_code(call: Callable[[], Any]) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


# --------------------------------------------------------------------------- loopback servers


Answer = tuple[int, dict[str, str], bytes]  # status, headers, body
# How a loopback server answers a POST: (handler, body, its number from 1) -> Answer (None: silence)
Respond = Callable[[BaseHTTPRequestHandler, bytes, int], "Answer | None"]


class _Handler(BaseHTTPRequestHandler):
    """Serves a :class:`Loopback`: POSTs through its ``respond``, CONNECT as a tunnel."""

    protocol_version = "HTTP/1.1"
    owner: Loopback

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        self.owner.requests.append(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = self.owner.respond(self, body, len(self.owner.requests))
        if answer is None:  # silence, until the test ends
            self.owner.closing.wait(timeout=60)
            self.close_connection = True
            return
        status, headers, data = answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_CONNECT(self) -> None:  # noqa: N802 - stdlib naming
        """An HTTPS proxy's tunnel: bytes both ways until either side closes."""
        self.owner.requests.append(self.path)
        host, _, port = self.path.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=30) as upstream:
            self.send_response(200, "Connection established")
            self.end_headers()
            self.close_connection = True
            _pipe(self.connection, upstream)


def _pipe(one: socket.socket, other: socket.socket, idle_s: float = 30.0) -> None:
    while True:
        readable, _, _ = select.select([one, other], [], [], idle_s)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (other if sock is one else one).sendall(data)


class Loopback:
    """A real HTTP(S) server on 127.0.0.1 whose POSTs ``respond`` answers (None: no answer
    until the server closes) and that tunnels CONNECTs; ``requests`` holds each request's
    target, in order."""

    def __init__(self, respond: Respond | None, tls: ssl.SSLContext | None = None) -> None:
        self.respond = respond or (lambda *_: (405, {}, b""))
        self.requests: list[str] = []
        self.closing = threading.Event()
        handler = type("Handler", (_Handler,), {"owner": self})
        self.server = http_relay.BusyHTTPServer(("127.0.0.1", 0), handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Iterator[Callable[..., Loopback]]:
    """Start :class:`Loopback` servers (``loopback(respond, tls=None)``), closed at the end."""
    started: list[Loopback] = []

    def start(respond: Respond | None, tls: ssl.SSLContext | None = None) -> Loopback:
        started.append(Loopback(respond, tls))
        return started[-1]

    yield start
    for server in started:
        server.close()


def relay_to(upstream: str) -> Respond:
    """Forward the request unchanged (Host too: it is signed) to ``upstream``; an
    absolute request target (a proxy's) goes to its own host."""

    def respond(handler: BaseHTTPRequestHandler, body: bytes, _: int) -> Answer:
        target = urllib.parse.urlsplit(handler.path)
        handler.path = target.path or "/"
        where = f"http://{target.netloc}" if target.netloc else upstream
        status, data, headers = http_relay.relay(handler, where, body, timeout=60)
        return status, headers, data

    return respond


def json_error(status: int, type_: str, message: str) -> Answer:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{type_}", "message": message})
    return status, {"Content-Type": table_reader.CONTENT_TYPE}, body.encode()


# --------------------------------------------------------------------------- reads


def test_reads_the_item_boto3_wrote_as_boto3_reads_it(world: World) -> None:
    item = read_item(TABLE, KEY, environ=world.environ())
    boto3s = world.dynamodb(world.function).get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)
    assert item == ITEM == boto3s["Item"]


def test_an_iam_users_key_pair_without_a_token_reads_too(world: World) -> None:
    assert read_item(TABLE, KEY, environ=world.environ(world.reader.credentials)) == ITEM


def test_an_absent_item_is_none(world: World) -> None:
    absent = {naming.A_SESSION_ID: {"S": "STACK#nobody"}}
    assert read_item(TABLE, absent, environ=world.environ()) is None


def test_a_wrong_secret_is_refused_with_boto3s_code(world: World) -> None:
    wrong = {**world.function, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}
    error = _failure(lambda: read_item(TABLE, KEY, environ=world.environ(wrong)))
    expected = _boto3_code(lambda: world.dynamodb(wrong).get_item(TableName=TABLE, Key=KEY))
    assert (error.code, error.status) == (expected, 403)
    assert TABLE in error.message and world.server.url in error.message


def test_an_unknown_access_key_is_an_unrecognized_client(world: World) -> None:
    unknown = {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000", "AWS_SECRET_ACCESS_KEY": "x"}
    expect_refusal(
        "dynamodb:GetItem",
        "unknown access key 'AKIAUNKNOWN000000000'",
        why="a key AWS does not know",
    )
    error = _failure(lambda: read_item(TABLE, KEY, environ=world.environ(unknown)))
    assert error.code == "UnrecognizedClientException"


def test_a_principal_without_get_item_is_denied_naming_the_table(world: World) -> None:
    error = _failure(lambda: read_item(TABLE, KEY, environ=world.environ(world.writer.credentials)))
    assert error.code == "AccessDeniedException"
    assert f"table {TABLE!r}" in str(error) and "dynamodb:GetItem" in str(error)


def test_a_missing_table_is_resource_not_found(world: World) -> None:
    error = _failure(lambda: read_item("NoSuchTable", KEY, environ=world.environ(FAKE_CREDENTIALS)))
    assert (error.code, error.status) == ("ResourceNotFoundException", 400)
    assert "'NoSuchTable'" in error.message


def test_a_bad_request_is_not_retried(world: World, loopback: Callable[..., Loopback]) -> None:
    proxy = loopback(relay_to(world.server.url))
    error = _failure(
        lambda: read_item(
            TABLE, {"Wrong": {"S": "x"}}, environ=world.environ(AWS_ENDPOINT_URL=proxy.url)
        )
    )
    assert error.code == "ValidationException"
    assert len(proxy.requests) == 1


# --------------------------------------------------------------------------- retries and faults


def test_throttling_is_retried_until_the_read_succeeds(
    world: World, loopback: Callable[..., Loopback]
) -> None:
    relay = relay_to(world.server.url)

    def respond(handler: BaseHTTPRequestHandler, body: bytes, number: int) -> Answer:
        if number < table_reader.MAX_ATTEMPTS:
            return json_error(
                400, "ThrottlingException", "Rate of requests exceeds the allowed throughput"
            )
        return relay(handler, body, number)

    server = loopback(respond)
    assert read_item(TABLE, KEY, environ=world.environ(AWS_ENDPOINT_URL=server.url)) == ITEM
    assert len(server.requests) == table_reader.MAX_ATTEMPTS


def test_a_lasting_5xx_gives_up_after_the_last_attempt(loopback: Callable[..., Loopback]) -> None:
    server = loopback(
        lambda *_: (503, {"Content-Type": "text/html"}, b"<html>Service Unavailable</html>")
    )
    environ = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": server.url}
    error = _failure(lambda: read_item(TABLE, KEY, environ=environ))
    assert (error.code, error.status) == ("503", 503)  # botocore's code for an untyped answer
    assert f"after {table_reader.MAX_ATTEMPTS} attempts" in error.message
    assert len(server.requests) == table_reader.MAX_ATTEMPTS


def test_a_crc32_mismatch_is_retried_then_reported(
    world: World, loopback: Callable[..., Loopback]
) -> None:
    relay = relay_to(world.server.url)

    def respond(handler: BaseHTTPRequestHandler, body: bytes, number: int) -> Answer:
        status, headers, data = relay(handler, body, number)
        return status, {**headers, "x-amz-crc32": str(zlib.crc32(data) ^ 1)}, data

    server = loopback(respond)
    error = _failure(
        lambda: read_item(TABLE, KEY, environ=world.environ(AWS_ENDPOINT_URL=server.url))
    )
    assert error.code == table_reader.CHECKSUM_ERROR
    assert len(server.requests) == table_reader.MAX_ATTEMPTS


def test_an_unreachable_endpoint_fails_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    error = _failure(
        lambda: read_item(TABLE, KEY, environ={**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": url})
    )
    assert error.code == table_reader.ENDPOINT_CONNECTION_ERROR
    assert url in error.message and TABLE in error.message
    assert time.monotonic() - started < FAST_FAILURE_S


def test_a_silent_endpoint_times_out_on_each_attempt(loopback: Callable[..., Loopback]) -> None:
    server = loopback(lambda *_: None)
    started = time.monotonic()
    environ = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": server.url}
    error = _failure(lambda: read_item(TABLE, KEY, environ=environ, read_timeout=0.3))
    assert error.code == table_reader.READ_TIMEOUT
    assert len(server.requests) == table_reader.MAX_ATTEMPTS
    assert time.monotonic() - started < FAST_FAILURE_S


@pytest.fixture
def full_listener() -> Iterator[str]:
    """A listening socket whose accept queue is full: a new connection is never accepted."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    held: list[socket.socket] = []
    try:
        for _ in range(8):
            probe = socket.socket()
            probe.settimeout(0.3)
            held.append(probe)
            try:
                probe.connect(address)
            except TimeoutError:
                break
        else:
            pytest.skip("this kernel accepts connections past a full listen queue")
        yield f"http://127.0.0.1:{address[1]}"
    finally:
        for sock in held:
            sock.close()
        listener.close()


def test_a_connection_never_accepted_times_out_quickly(full_listener: str) -> None:
    started = time.monotonic()
    environ = {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": full_listener}
    error = _failure(lambda: read_item(TABLE, KEY, environ=environ, connect_timeout=0.3))
    assert error.code == table_reader.CONNECT_TIMEOUT
    assert time.monotonic() - started < FAST_FAILURE_S


# --------------------------------------------------------------------------- proxies


@pytest.mark.parametrize(
    ("no_proxy", "proxied"),
    [(None, True), ("localhost,example.com", True), ("127.0.0.1", False), ("*", False)],
)
def test_http_proxy_is_honoured_as_botocore_honours_it(
    world: World,
    loopback: Callable[..., Loopback],
    monkeypatch: pytest.MonkeyPatch,
    no_proxy: str | None,
    proxied: bool,
) -> None:
    proxy = loopback(relay_to(world.server.url))
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    if no_proxy is not None:
        monkeypatch.setenv("NO_PROXY", no_proxy)
    assert read_item(TABLE, KEY, environ=world.environ()) == ITEM
    assert proxy.requests == ([f"{world.server.url}/"] if proxied else [])
    world.dynamodb(world.function).get_item(TableName=TABLE, Key=KEY)  # boto3, same environment
    assert len(proxy.requests) == (2 if proxied else 0)


def test_reads_through_the_local_clouds_egress_proxy_with_the_functions_identity(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only requests through a function's egress proxy carry lambda:SourceFunctionArn in
    the local cloud: a role that may read only from inside its function reads through it."""
    environ = world.environ(world.in_function_only)
    outside = _failure(lambda: read_item(TABLE, KEY, environ=environ))
    assert outside.code == "AccessDeniedException"
    function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:egress-function"
    monkeypatch.setenv("HTTP_PROXY", world.server.egress(function_arn))
    assert read_item(TABLE, KEY, environ=environ) == ITEM


@dataclass(frozen=True)
class Tls:
    """A self-signed certificate for 127.0.0.1: the server's context, the client's CA file."""

    server: ssl.SSLContext
    ca_file: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, False, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return Tls(server, folder / "cert.pem")


def test_https_verifies_the_certificate_against_aws_ca_bundle(
    world: World, loopback: Callable[..., Loopback], tls: Tls
) -> None:
    server = loopback(relay_to(world.server.url), tls=tls.server)
    unknown_ca = _failure(
        lambda: read_item(TABLE, KEY, environ=world.environ(AWS_ENDPOINT_URL=server.url))
    )
    assert unknown_ca.code == table_reader.ENDPOINT_CONNECTION_ERROR
    assert "CERTIFICATE_VERIFY_FAILED" in unknown_ca.message
    environ = world.environ(AWS_ENDPOINT_URL=server.url, AWS_CA_BUNDLE=str(tls.ca_file))
    assert read_item(TABLE, KEY, environ=environ) == ITEM


def test_https_goes_through_the_https_proxys_tunnel(
    world: World, loopback: Callable[..., Loopback], tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = loopback(relay_to(world.server.url), tls=tls.server)
    proxy = loopback(None)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # not for https: never used
    environ = world.environ(AWS_ENDPOINT_URL=server.url, AWS_CA_BUNDLE=str(tls.ca_file))
    assert read_item(TABLE, KEY, environ=environ) == ITEM
    assert proxy.requests == [server.url.removeprefix("https://")]  # one CONNECT, then TLS


# --------------------------------------------------------------------------- configuration


def test_missing_credentials_or_region_are_named() -> None:
    error = _failure(lambda: read_item(TABLE, KEY, environ={"AWS_REGION": REGION}))
    assert error.code == table_reader.NO_CREDENTIALS and "AWS_ACCESS_KEY_ID" in error.message
    credentials = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
    error = _failure(lambda: read_item(TABLE, KEY, environ=credentials))
    assert error.code == table_reader.NO_REGION and "AWS_REGION" in error.message


def test_the_session_token_has_its_legacy_name_too() -> None:
    environ = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_SECURITY_TOKEN": "t"}
    assert table_reader.credentials_from(environ).token == "t"
    assert table_reader.credentials_from({**environ, "AWS_SESSION_TOKEN": "s"}).token == "s"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"AWS_REGION": "eu-west-1"}, "https://dynamodb.eu-west-1.amazonaws.com"),
        ({"AWS_REGION": "cn-north-1"}, "https://dynamodb.cn-north-1.amazonaws.com.cn"),
        (
            {"AWS_DEFAULT_REGION": "cn-northwest-1"},
            "https://dynamodb.cn-northwest-1.amazonaws.com.cn",
        ),
        # AWS_REGION first, as the newer SDKs read it (botocore reads AWS_DEFAULT_REGION only;
        # Lambda sets both to the same region)
        (
            {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "cn-north-1"},
            "https://dynamodb.eu-west-1.amazonaws.com",
        ),
        (
            {"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"},
            "http://127.0.0.1:1",
        ),
        (
            {
                "AWS_REGION": "eu-west-1",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
                "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2",
            },
            "http://127.0.0.1:2",
        ),
        (
            {
                "AWS_REGION": "eu-west-1",
                "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2",
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
            },
            "https://dynamodb.eu-west-1.amazonaws.com",
        ),
        ({"AWS_REGION": "xx-nowhere-1"}, "https://dynamodb.xx-nowhere-1.amazonaws.com"),
    ],
)
def test_endpoint_resolution(environ: dict[str, str], expected: str) -> None:
    assert table_reader.endpoint_url(environ) == expected


@pytest.mark.parametrize(
    "endpoint", ["ftp://127.0.0.1:1", "127.0.0.1:1", "http://127.0.0.1:1/?x=1"]
)
def test_an_endpoint_that_is_no_plain_http_url_is_refused(endpoint: str) -> None:
    error = _failure(
        lambda: table_reader.endpoint_url({"AWS_REGION": REGION, "AWS_ENDPOINT_URL": endpoint})
    )
    assert error.code == table_reader.INVALID_CONFIGURATION and endpoint in error.message


BOTOCORE_REGIONS = (
    "us-east-1",
    "eu-west-3",
    "ap-southeast-7",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "eu-isoe-west-1",
    "us-isof-south-1",
    "eusc-de-east-1",
    "xx-nowhere-1",
    "local",
)
CONFIGURED = {
    "generic": {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"},
    "dynamodb": {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2/",
    },
    "ignored": {
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
    },
}


@pytest.fixture(scope="module")
def botocore_session() -> botocore.session.Session:
    return botocore.session.get_session()


class _Sent(Exception):
    """Raised in place of sending: botocore's request was built, with its final URL."""


def _botocore_endpoint(session: botocore.session.Session, region: str) -> str:
    """Where botocore's DynamoDB client sends a GetItem (its endpoint rules, run for real)."""
    client = session.create_client(
        "dynamodb", region_name=region, aws_access_key_id="a", aws_secret_access_key="b"
    )

    def stop(request: botocore.awsrequest.AWSPreparedRequest, **_: Any) -> None:
        raise _Sent(request.url)

    client.meta.events.register("before-send", stop)
    try:
        client.get_item(TableName=TABLE, Key=KEY)
    except _Sent as sent:
        return str(sent)
    raise AssertionError("botocore sent the request")


def _origin(url: str) -> tuple[str, str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc, parts.path or "/"


FLAGS = ("", "fips", "dualstack", "fips+dualstack")
ENDPOINT_CASES = [
    *((region, flags, "") for region in BOTOCORE_REGIONS for flags in FLAGS),
    *(
        (region, flags, configured)
        for region in ("us-east-1", "cn-north-1")
        for flags in FLAGS
        for configured in CONFIGURED
    ),
]


@pytest.mark.parametrize(("region", "flags", "configured"), ENDPOINT_CASES)
def test_endpoints_are_botocores(
    botocore_session: botocore.session.Session,
    monkeypatch: pytest.MonkeyPatch,
    region: str,
    flags: str,
    configured: str,
) -> None:
    environ = {"AWS_REGION": region, **CONFIGURED.get(configured, {})}
    environ["AWS_USE_FIPS_ENDPOINT"] = str("fips" in flags).lower()
    environ["AWS_USE_DUALSTACK_ENDPOINT"] = str("dualstack" in flags).lower()
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    try:
        expected = _origin(_botocore_endpoint(botocore_session, region))
    except botocore.exceptions.EndpointVariantError:
        # dual-stack in aws-iso-e and aws-iso-f: botocore's older endpoint table has no such
        # variant and refuses to make the client; DynamoDB's endpoint rules (which give every
        # request's URL) name one, and so does the reader
        suffix = table_reader.partition_of(region)[2]
        assert table_reader.endpoint_url(environ).endswith(f".{region}.{suffix}")
        return
    except botocore.exceptions.BotoCoreError as refused:
        error = _failure(lambda: table_reader.endpoint_url(environ))
        assert error.code == table_reader.INVALID_CONFIGURATION, refused
        return
    assert _origin(table_reader.endpoint_url(environ)) == expected


def test_the_partitions_are_botocores() -> None:
    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    botocores = tuple(
        (p["id"], p["regionRegex"], p["outputs"]["dnsSuffix"], p["outputs"]["dualStackDnsSuffix"])
        for p in data["partitions"]
    )
    assert table_reader.PARTITIONS == botocores


# --------------------------------------------------------------------------- SigV4

# From the AWS Signature Version 4 test suite (aws-sig-v4-test-suite, Apache-2.0, as
# botocore's tests/unit/auth/aws4_testsuite carries it): request, then expected Authorization.
SUITE_CREDENTIALS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TOKEN = (
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfI"
    "eoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0"
    "wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDr"
    "ypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
)
SUITE_HEADERS = {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}
SUITE_SCOPE = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
SUITE = {
    "get-vanilla": (
        "GET",
        {},
        b"",
        f"AWS4-HMAC-SHA256 Credential={SUITE_SCOPE}, SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ),
    "post-x-www-form-urlencoded": (
        "POST",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"Param1=value1",
        f"AWS4-HMAC-SHA256 Credential={SUITE_SCOPE}, SignedHeaders=content-type;host;x-amz-date, "
        "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    ),
    "post-sts-header-before": (
        "POST",
        {"X-Amz-Security-Token": SUITE_TOKEN},
        b"",
        f"AWS4-HMAC-SHA256 Credential={SUITE_SCOPE}, SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    ),
}


@pytest.mark.parametrize("name", SUITE)
def test_the_signature_matches_the_aws_test_suite(name: str) -> None:
    method, headers, body, expected = SUITE[name]
    credentials = Credentials(*SUITE_CREDENTIALS)
    signed = sigv4.authorization(
        method, "/", {**SUITE_HEADERS, **headers}, body, credentials, "us-east-1", "service"
    )
    assert signed == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://dynamodb.eu-west-1.amazonaws.com",
        "https://dynamodb.eu-west-1.amazonaws.com:443",
        "http://127.0.0.1:4566",
    ],
)
def test_the_get_item_request_is_signed_as_botocore_signs_it(url: str) -> None:
    key, secret, token = "ASIAEXAMPLEEXAMPLE00", "s3cr3t/with+chars", "session//token+=="
    body = json.dumps({"TableName": TABLE, "Key": KEY, "ConsistentRead": True}).encode()
    theirs = botocore.awsrequest.AWSRequest(
        method="POST",
        url=f"{url}/",
        data=body,
        headers={"Content-Type": table_reader.CONTENT_TYPE, "X-Amz-Target": table_reader.TARGET},
    )
    credentials = botocore.credentials.Credentials(key, secret, token)
    botocore.auth.SigV4Auth(credentials, "dynamodb", "eu-west-1").add_auth(theirs)
    ours = table_reader.signed_request(
        url,
        body,
        Credentials(key, secret, token),
        "eu-west-1",
        amz_date=theirs.headers["X-Amz-Date"],
    )
    assert ours.get_header("Authorization") == theirs.headers["Authorization"]
    assert "x-amz-security-token" in theirs.headers["Authorization"]


# --------------------------------------------------------------------------- the point of it

STDLIB_ONLY = """
import json, sys
before = set(sys.modules)
from plldb.layer import table_reader
item = table_reader.read_item(sys.argv[1], json.loads(sys.argv[2]))
print(json.dumps({"read": item is not None, "imported": sorted(set(sys.modules) - before)}))
"""


def test_import_and_read_load_only_the_standard_library(world: World) -> None:
    """boto3 is installed in this interpreter: the reader must not load it, nor any other
    third-party module, neither on import nor for a read."""
    repo = Path(__file__).resolve().parents[1]
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(world.environ(), PYTHONPATH=str(repo))
    result = subprocess.run(
        [sys.executable, "-c", STDLIB_ONLY, TABLE, json.dumps(KEY)],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["read"]
    foreign = [
        name
        for name in outcome["imported"]
        if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "plldb"
    ]
    assert foreign == []
    assert not {"boto3", "botocore", "urllib3"} & set(outcome["imported"])
    assert {"plldb.layer.table_reader", "plldb.layer.sigv4"} <= set(outcome["imported"])
