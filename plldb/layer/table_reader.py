"""Read one DynamoDB item with the standard library only: the shim's first read.

Every execution environment of an instrumented function reads one item (a shared stage's
route table) before anything else, also the many that serve no developer; importing boto3
for that one call would lengthen all their cold starts. This module makes the ``GetItem``
itself, signed by plldb.layer.sigv4, and imports only the standard library
(tests/test_table_reader.py proves it in a fresh process).

It does as the function's own boto3 would: credentials from ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN`` (or ``AWS_SECURITY_TOKEN``) only, as
Lambda sets them (no profiles, container credentials or instance metadata); region from
``AWS_REGION``, else ``AWS_DEFAULT_REGION``; endpoint: :func:`endpoint_url`; proxies from
the process environment through urllib's ``ProxyHandler``, whose ``getproxies`` and
``proxy_bypass`` botocore calls too (an ``https://`` proxy URL is spoken to in plain HTTP,
where botocore would use TLS); certificates from the system store or ``AWS_CA_BUNDLE``;
retries as botocore's standard mode (throttling, 500/502/503/504, a CRC32 mismatch,
connection failures) with a shorter back-off; the item as boto3's client returns it
(binary values as bytes); errors as :class:`TableReadError`, with the code boto3's
``ClientError`` would carry. No shared state: callers may use it from any thread (each
call opens and closes its own connection).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

from plldb.layer.sigv4 import Credentials, authorization, host_header

TYPE_CHECKING = False  # typing itself costs an import: annotations are not evaluated here
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

SERVICE = "dynamodb"
TARGET = "DynamoDB_20120810.GetItem"
CONTENT_TYPE = "application/x-amz-json-1.0"
USER_AGENT = "plldb-table-reader"

# A cold start waits on this read: give up quickly where botocore's defaults (60 s each)
# would hold an invocation for minutes (a function in a VPC without a route to DynamoDB).
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 3
BACKOFF_BASE_S = 0.1  # full jitter: attempt n waits random() * BASE * 2**(n - 1)

# Codes of failures that are not DynamoDB's answers (named after botocore's exceptions).
NO_CREDENTIALS = "NoCredentials"
NO_REGION = "NoRegion"
INVALID_CONFIGURATION = "InvalidConfiguration"
ENDPOINT_CONNECTION_ERROR = "EndpointConnectionError"
CONNECT_TIMEOUT = "ConnectTimeoutError"
READ_TIMEOUT = "ReadTimeoutError"
CONNECTION_CLOSED = "ConnectionClosedError"
CHECKSUM_ERROR = "ChecksumError"
INVALID_RESPONSE = "InvalidResponse"

# botocore.retries.standard: what its standard mode retries.
_THROTTLING_CODES = frozenset(
    "Throttling ThrottlingException ThrottledException RequestThrottledException "
    "TooManyRequestsException ProvisionedThroughputExceededException "
    "TransactionInProgressException RequestLimitExceeded BandwidthLimitExceeded "
    "LimitExceededException RequestThrottled SlowDown PriorRequestNotComplete "
    "EC2ThrottledException".split()
)
_TRANSIENT_CODES = frozenset(
    "RequestTimeout RequestTimeoutException PriorRequestNotComplete".split()
)
_TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
_NETWORK_CODES = frozenset(
    {ENDPOINT_CONNECTION_ERROR, CONNECT_TIMEOUT, READ_TIMEOUT, CONNECTION_CLOSED, CHECKSUM_ERROR}
)

# The partitions of botocore's partitions.json (botocore 1.43), in its order: (name, region
# pattern, DNS suffix, dual-stack DNS suffix). A region no pattern matches is in "aws", as
# botocore decides; a partition AWS adds later needs its line here (a test compares this
# table with the installed botocore's).
PARTITIONS = (
    ("aws", r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$", "amazonaws.com", "api.aws"),
    ("aws-cn", r"^cn\-\w+\-\d+$", "amazonaws.com.cn", "api.amazonwebservices.com.cn"),
    ("aws-eusc", r"^eusc\-(de)\-\w+\-\d+$", "amazonaws.eu", "api.amazonwebservices.eu"),
    ("aws-iso", r"^us\-iso\-\w+\-\d+$", "c2s.ic.gov", "api.aws.ic.gov"),
    ("aws-iso-b", r"^us\-isob\-\w+\-\d+$", "sc2s.sgov.gov", "api.aws.scloud"),
    ("aws-iso-e", r"^eu\-isoe\-\w+\-\d+$", "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"),
    ("aws-iso-f", r"^us\-isof\-\w+\-\d+$", "csp.hci.ic.gov", "api.aws.hci.ic.gov"),
    ("aws-us-gov", r"^us\-gov\-\w+\-\d+$", "amazonaws.com", "api.aws"),
)


class TableReadError(Exception):
    """The item could not be read; ``code`` says why, as boto3's ``ClientError`` would.

    ``code`` is DynamoDB's error type (``AccessDeniedException``,
    ``ResourceNotFoundException``, ``UnrecognizedClientException``, ...), the HTTP status
    as text when an answer names no type (``"503"``), or one of this module's codes for
    what is not an answer (:data:`ENDPOINT_CONNECTION_ERROR`, :data:`NO_CREDENTIALS`, ...).
    ``status`` is the HTTP status when DynamoDB (or a proxy) answered, else None.
    """

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


# --------------------------------------------------------------------------- the read


def read_item(
    table: str,
    key: dict[str, Any],
    *,
    environ: Mapping[str, str] = os.environ,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
) -> dict[str, Any] | None:
    """The item of ``table`` under ``key`` (DynamoDB JSON), read strongly consistent; None
    when there is none. Credentials, region and endpoint come from ``environ``; proxies
    from the process environment (module docstring). Raises :class:`TableReadError`."""
    credentials = credentials_from(environ)
    region = region_from(environ)
    url = endpoint_url(environ)
    body = json.dumps({"TableName": table, "Key": key, "ConsistentRead": True}).encode()
    opener = _opener(environ, read_timeout)
    where = f"GetItem on table {table!r} at {url}"

    def attempt() -> dict[str, Any]:
        request = signed_request(url, body, credentials, region)
        return _answer(*_send(opener, request, connect_timeout, where), where)

    answer = _with_retries(attempt, where)
    item = answer.get("Item")
    return _decoded(item) if item is not None else None


def _with_retries(attempt: Callable[[], dict[str, Any]], where: str) -> dict[str, Any]:
    """``attempt()``, again after a short random wait while it fails retryably."""
    for number in range(1, MAX_ATTEMPTS + 1):
        try:
            return attempt()
        except TableReadError as error:
            if not _retryable(error):
                raise
            if number == MAX_ATTEMPTS:
                message = f"{error.message} (after {MAX_ATTEMPTS} attempts)"
                raise TableReadError(error.code, message, error.status) from error
            time.sleep(random.random() * BACKOFF_BASE_S * 2 ** (number - 1))
    raise AssertionError("unreachable")


def _retryable(error: TableReadError) -> bool:
    return (
        error.code in _THROTTLING_CODES
        or error.code in _TRANSIENT_CODES
        or error.code in _NETWORK_CODES
        or error.status in _TRANSIENT_STATUSES
    )


# --------------------------------------------------------------------------- configuration


def credentials_from(environ: Mapping[str, str]) -> Credentials:
    """The credentials Lambda puts in a function's environment (botocore's environment
    provider: the key pair, and the session token under either of its names)."""
    access_key = environ.get("AWS_ACCESS_KEY_ID")
    secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
    if not access_key or not secret_key:
        raise TableReadError(
            NO_CREDENTIALS,
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set (this reader takes "
            "credentials from the environment only, as Lambda provides them)",
        )
    token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN") or None
    return Credentials(access_key, secret_key, token)


def region_from(environ: Mapping[str, str]) -> str:
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise TableReadError(NO_REGION, "neither AWS_REGION nor AWS_DEFAULT_REGION is set")
    return region


def partition_of(region: str) -> tuple[str, str, str]:
    """(name, DNS suffix, dual-stack DNS suffix) of the partition ``region`` is in.

    Known: every partition of :data:`PARTITIONS` (aws, aws-cn, aws-eusc, aws-iso,
    aws-iso-b, aws-iso-e, aws-iso-f, aws-us-gov). A region that matches none of their
    patterns is taken to be in ``aws`` (amazonaws.com), as botocore takes it.
    """
    for name, pattern, suffix, dualstack_suffix in PARTITIONS:
        if re.match(pattern, region):
            return name, suffix, dualstack_suffix
    return PARTITIONS[0][0], PARTITIONS[0][2], PARTITIONS[0][3]


def endpoint_url(environ: Mapping[str, str]) -> str:
    """Where DynamoDB is, in the order the AWS SDKs look.

    ``AWS_ENDPOINT_URL_DYNAMODB``, else ``AWS_ENDPOINT_URL`` (both unless
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true), else the regional endpoint
    ``https://dynamodb.<region>.<partition's DNS suffix>``. ``AWS_USE_FIPS_ENDPOINT`` and
    ``AWS_USE_DUALSTACK_ENDPOINT`` choose the FIPS and dual-stack names as DynamoDB's
    endpoint rules do (in aws-us-gov the regular name is the FIPS one); a configured
    endpoint wins over them, as in botocore. Region ``local`` is DynamoDB Local.
    """
    region = region_from(environ)
    fips = _flag(environ, "AWS_USE_FIPS_ENDPOINT")
    dualstack = _flag(environ, "AWS_USE_DUALSTACK_ENDPOINT")
    configured = _configured_endpoint(environ)
    if configured:
        return configured
    if region == "local":
        if fips or dualstack:
            raise TableReadError(
                INVALID_CONFIGURATION,
                "AWS_USE_FIPS_ENDPOINT / AWS_USE_DUALSTACK_ENDPOINT cannot go with region "
                "'local' (DynamoDB Local), as DynamoDB's endpoint rules say",
            )
        return "http://localhost:8000"
    partition, suffix, dualstack_suffix = partition_of(region)
    fips_name = fips and (dualstack or partition != "aws-us-gov")
    host = "dynamodb-fips" if fips_name else "dynamodb"
    return f"https://{host}.{region}.{dualstack_suffix if dualstack else suffix}"


def _configured_endpoint(environ: Mapping[str, str]) -> str | None:
    if _flag(environ, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        return None
    url = environ.get("AWS_ENDPOINT_URL_DYNAMODB") or environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise TableReadError(
            INVALID_CONFIGURATION, f"endpoint {url!r} is not an http(s) URL without a query"
        )
    return url


def _flag(environ: Mapping[str, str], name: str) -> bool:
    """botocore's reading of a boolean setting: "true" in any case, nothing else."""
    return environ.get(name, "").lower() == "true"


# --------------------------------------------------------------------------- the request


def signed_request(
    url: str, body: bytes, credentials: Credentials, region: str, *, amz_date: str | None = None
) -> urllib.request.Request:
    """The GetItem request, signed now (each attempt anew, as botocore signs a retry) or,
    for a test, at ``amz_date`` (``YYYYMMDDTHHMMSSZ``)."""
    headers = {
        "Host": host_header(url),
        "Content-Type": CONTENT_TYPE,
        "X-Amz-Target": TARGET,
        "X-Amz-Date": amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
    }
    if credentials.token:
        headers["X-Amz-Security-Token"] = credentials.token
    path = urllib.parse.urlsplit(url).path
    if not path:  # botocore's request URL for an endpoint without a path ends in "/"
        url, path = f"{url}/", "/"
    headers["Authorization"] = authorization(
        "POST", path, headers, body, credentials, region, SERVICE
    )
    headers["User-Agent"] = USER_AGENT  # not signed, as botocore leaves it out
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


# --------------------------------------------------------------------------- HTTP


class _ReadTimeout:
    """A connection that connects within its ``timeout``, then waits at most
    ``read_timeout`` for each read (urllib has one timeout for both)."""

    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self.sock.settimeout(self.read_timeout)  # type: ignore[attr-defined]


class _Connection(_ReadTimeout, http.client.HTTPConnection):
    pass


class _TLSConnection(_ReadTimeout, http.client.HTTPSConnection):
    pass


class _Handler(urllib.request.HTTPSHandler):
    """http and https with both timeouts; no redirects and no error processor, so that
    every answer, whatever its status, comes back to :func:`_answer`."""

    def __init__(self, context: ssl.SSLContext, read_timeout: float) -> None:
        super().__init__(context=context)
        self.read_timeout = read_timeout

    def http_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_Connection, request, read_timeout=self.read_timeout)

    def https_open(self, request: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _TLSConnection, request, context=self._context, read_timeout=self.read_timeout
        )

    http_request = urllib.request.AbstractHTTPHandler.do_request_


def _opener(environ: Mapping[str, str], read_timeout: float) -> urllib.request.OpenerDirector:
    opener = urllib.request.OpenerDirector()
    opener.add_handler(urllib.request.ProxyHandler())  # the process's proxy variables
    opener.add_handler(urllib.request.UnknownHandler())  # e.g. a socks5:// proxy: URLError
    context = ssl.create_default_context(cafile=environ.get("AWS_CA_BUNDLE") or None)
    opener.add_handler(_Handler(context, read_timeout))
    return opener


def _send(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    timeout: float,
    where: str,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """Status, headers and body of the answer; a failure to get one as TableReadError."""
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.URLError as error:  # before the request was sent
        reason = error.reason
        code = CONNECT_TIMEOUT if isinstance(reason, TimeoutError) else ENDPOINT_CONNECTION_ERROR
        raise TableReadError(code, f"{where}: {reason}") from error
    except TimeoutError as error:
        raise TableReadError(READ_TIMEOUT, f"{where}: no answer in time") from error
    except (OSError, http.client.HTTPException) as error:
        message = f"{where}: connection lost ({type(error).__name__}: {error})"
        raise TableReadError(CONNECTION_CLOSED, message) from error


def _answer(
    status: int, headers: http.client.HTTPMessage, body: bytes, where: str
) -> dict[str, Any]:
    """The parsed answer, or its error as TableReadError (botocore's JSON error parsing)."""
    crc = headers.get("x-amz-crc32")
    if crc is not None and crc.isdigit() and int(crc) != zlib.crc32(body):
        raise TableReadError(CHECKSUM_ERROR, f"{where}: the answer's CRC32 does not match")
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        if status == 200:
            raise TableReadError(INVALID_RESPONSE, f"{where}: not a JSON object", status)
        parsed = {}
    if status == 200:
        return parsed
    code = str(parsed.get("__type") or status).split(":", 1)[0].rsplit("#", 1)[-1]
    message = parsed.get("message", parsed.get("Message", "")) or f"HTTP {status}"
    request_id = headers.get("x-amzn-RequestId")
    suffix = f" (request id {request_id})" if request_id else ""
    raise TableReadError(code, f"{where}: {message}{suffix}", status)


def _decoded(value: Any) -> Any:
    """DynamoDB JSON with binary values as bytes, as botocore hands them out."""
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    if not isinstance(value, dict):
        return value
    decoded: dict[str, Any] = {}
    for name, inner in value.items():
        if name == "B" and isinstance(inner, str):
            decoded[name] = base64.b64decode(inner)
        elif name == "BS" and isinstance(inner, list):
            decoded[name] = [base64.b64decode(v) for v in inner]
        else:
            decoded[name] = _decoded(inner)
    return decoded
