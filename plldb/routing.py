"""Route expressions of a shared stage, and which session an invocation goes to.

Several developers attach to one deployed stack at once; each session names the invocations
it wants with routes (``attach --route``). The route table (session id -> the session's
routes, when it attached, by whom, whether it mirrors) lives in the stack's lock item
(:data:`plldb.naming.A_ROUTES`). The shim reads that item and calls :func:`choose` on every
invocation of a function on a shared stage, so matching is cheap: the event is parsed at most
once per invocation, and only when a route looks inside it. docs/routes.md is the user's
description of the syntax and the rules.

Standard library only: bundled with :mod:`plldb.naming` into every helper Lambda zip and into
the runtime layer, so that the CLI (checking ``--route``), the authorizer (writing the table)
and the shim (matching) agree on one definition.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

MAX_ROUTES = 10  # per session
MAX_ROUTE_LENGTH = 200  # characters of one expression
KINDS = ("header", "path", "tenant", "attr", "sample")
FORMS = (
    "header:NAME=VALUE (an HTTP request header), path:A.B.C=VALUE (a value in the event JSON), "
    "tenant:ID (the invocation's Lambda tenant id), attr:NAME=VALUE (an SQS or SNS message "
    "attribute), sample:P% (P percent of invocations, 0 < P <= 100)"
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # an HTTP token (RFC 9110)
_PERCENT = re.compile(r"([0-9]+)(?:\.([0-9]+))?%")
_SHOWN = 60  # characters of a long expression quoted in an error


class RouteError(ValueError):
    """A route expression a user wrote is not valid; the message says why and what is."""

    def __init__(self, problem: str, expression: object = None) -> None:
        shown = expression
        if isinstance(expression, str) and len(expression) > _SHOWN:
            shown = expression[:_SHOWN] + "..."
        subject = "routes" if expression is None else f"route {shown!r}"
        super().__init__(f"{subject}: {problem}. Accepted forms: {FORMS}")
        self.expression = expression
        self.problem = problem


# --- Routes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One route expression, parsed. Build it with :meth:`parse`.

    ``name`` is the header name (lower-case: HTTP names are case-insensitive), the dotted
    path, or the attribute name; ``value`` what it must equal, the tenant id, or the
    canonical percent of a sample (``"12.5"``). ``str(route)`` is the canonical expression.
    """

    kind: str
    name: str
    value: str
    # Worked out once from name and value, so that matching does no string work:
    segments: tuple[tuple[str, int | None], ...] = field(init=False, repr=False, compare=False)
    threshold: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        segments: tuple[tuple[str, int | None], ...] = ()
        if self.kind == "path":
            segments = tuple(
                (key, int(key) if key.isascii() and key.isdigit() else None)
                for key in self.name.split(".")
            )
        object.__setattr__(self, "segments", segments)
        object.__setattr__(self, "threshold", _threshold(self.value) if self.kind == "sample" else 0)

    @classmethod
    def parse(cls, text: str) -> Route:
        """The route ``text`` expresses; :class:`RouteError` says what is wrong with it."""
        if not isinstance(text, str):
            raise RouteError(f"a route is text, not {type(text).__name__}", text)
        return _parse(text)

    def __str__(self) -> str:
        if self.kind == "tenant":
            return f"tenant:{self.value}"
        if self.kind == "sample":
            return f"sample:{self.value}%"
        return f"{self.kind}:{self.name}={self.value}"

    def matches(self, view: InvocationView) -> bool:
        """Whether this route takes the invocation ``view`` shows."""
        return _KINDS[self.kind][1](self, view)

    def hint(self) -> str:
        """One line telling the developer how to send an invocation this route takes."""
        return _KINDS[self.kind][2](self)


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> Route:
    """Cached: the shim parses the whole table on every read of it, and routes are
    immutable, so a table that has not changed costs no parsing."""
    if len(text) > MAX_ROUTE_LENGTH:
        raise RouteError(f"{len(text)} characters; at most {MAX_ROUTE_LENGTH}", text)
    control = _CONTROL.search(text)
    if control:
        raise RouteError(f"contains the control character {control.group()!r}", text)
    kind, colon, rest = text.partition(":")
    if not colon:
        raise RouteError("no kind: start with header:, path:, tenant:, attr: or sample:", text)
    if kind.lower() not in _KINDS:
        raise RouteError(f"unknown kind {kind!r}", text)
    return _KINDS[kind.lower()][0](text, rest)


def parse_routes(texts: Iterable[str]) -> list[Route]:
    """A session's routes: at most :data:`MAX_ROUTES`, each valid, none twice (compared in
    canonical form, so ``header:X-User=a`` and ``header:x-user=a`` are the same route)."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
        raise RouteError(f"give a list of expressions, not {type(texts).__name__}")
    texts = list(texts)
    if len(texts) > MAX_ROUTES:
        raise RouteError(f"{len(texts)} given; at most {MAX_ROUTES} per session")
    routes: list[Route] = []
    for text in texts:
        route = Route.parse(text)
        if route in routes:
            raise RouteError("given twice (names of headers are compared in lower case)", text)
        routes.append(route)
    return routes


def _pair(text: str, rest: str, kind: str, what: str) -> tuple[str, str]:
    name, equals, value = rest.partition("=")
    if not equals:
        raise RouteError(f"no '=': write {kind}:{what}=VALUE", text)
    if not name:
        raise RouteError(f"the {'path' if kind == 'path' else 'name'} before '=' is empty", text)
    if not value:
        raise RouteError("the value after '=' is empty", text)
    return name, value


def _header(text: str, rest: str) -> Route:
    name, value = _pair(text, rest, "header", "NAME")
    if not _HEADER_NAME.fullmatch(name):
        raise RouteError(
            f"{name!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)", text
        )
    if value != value.strip(" "):
        raise RouteError(
            "the value starts or ends with a space; a header value never does as the function "
            "receives it",
            text,
        )
    return Route("header", name.lower(), value)


def _path(text: str, rest: str) -> Route:
    name, value = _pair(text, rest, "path", "A.B.C")
    if "" in name.split("."):
        raise RouteError(f"the path {name!r} has an empty key: separate keys with one dot", text)
    return Route("path", name, value)


def _tenant(text: str, rest: str) -> Route:
    if not rest:
        raise RouteError("the tenant id after 'tenant:' is empty", text)
    return Route("tenant", "", rest)


def _attr(text: str, rest: str) -> Route:
    name, value = _pair(text, rest, "attr", "NAME")
    return Route("attr", name, value)


def _sample(text: str, rest: str) -> Route:
    match = _PERCENT.fullmatch(rest)
    if not match:
        raise RouteError("a sample is a percent with a '%' sign: sample:10% or sample:0.5%", text)
    whole, fraction = match.group(1), (match.group(2) or "").rstrip("0")
    numerator, scale = int(whole + fraction), 10 ** len(fraction)
    if not 0 < numerator <= 100 * scale:
        raise RouteError(f"{rest} is out of range: above 0% and at most 100%", text)
    return Route("sample", "", str(int(whole)) + (f".{fraction}" if fraction else ""))


def _threshold(percent: str) -> int:
    """How many of the 2**32 sample points a canonical percent takes: those below it.
    Integer arithmetic, so that the boundary is exact for any decimal percent."""
    whole, _, fraction = percent.partition(".")
    numerator, scale = int(whole + fraction), 10 ** len(fraction)
    return -(-(numerator << 32) // (100 * scale))  # ceiling of P / 100 * 2**32


# --- One invocation -----------------------------------------------------------------------

_UNPARSED: Any = object()


def _parse_object(raw: bytes | str) -> dict[str, Any] | None:
    """The event as a JSON object, or None when it is not one (a string, a list, not JSON)."""
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        return None
    return event if isinstance(event, dict) else None


class InvocationView:
    """What routes look at of one invocation. The event is parsed on first use, at most
    once: sample and tenant routes never need it, and a table of them costs no parse."""

    __slots__ = ("raw", "tenant_id", "request_id", "_event", "_headers", "_point")

    def __init__(self, raw: bytes | str, tenant_id: str | None, request_id: str) -> None:
        self.raw = raw
        self.tenant_id = tenant_id  # Lambda-Runtime-Aws-Tenant-Id, None without isolation
        self.request_id = request_id
        self._event: dict[str, Any] | None = _UNPARSED
        self._headers: dict[str, list[Any]] | None = None
        self._point: int | None = None

    @property
    def parsed(self) -> bool:
        """Whether the event has been parsed (for the shim's logs, and tests)."""
        return self._event is not _UNPARSED

    @property
    def event(self) -> dict[str, Any] | None:
        """The event JSON object, or None when the event is not one."""
        if self._event is _UNPARSED:
            self._event = _parse_object(self.raw)
        return self._event

    @property
    def headers(self) -> dict[str, list[Any]]:
        """Lower-case header name -> every value it has in the event, from ``headers`` and
        ``multiValueHeaders`` (API Gateway REST and HTTP APIs, function URLs, ALB)."""
        if self._headers is None:
            self._headers = _header_index(self.event)
        return self._headers

    @property
    def sample_point(self) -> int:
        """The request id's place among 2**32: the first 8 hex digits of its sha256."""
        if self._point is None:
            request_id = self.request_id.encode("utf-8", "surrogatepass")
            self._point = int(hashlib.sha256(request_id).hexdigest()[:8], 16)
        return self._point


def _header_index(event: dict[str, Any] | None) -> dict[str, list[Any]]:
    index: dict[str, list[Any]] = {}
    for key in ("headers", "multiValueHeaders"):
        source = event.get(key) if event is not None else None
        if not isinstance(source, dict):
            continue  # REST APIs send null for a request without any
        for name, values in source.items():
            if not isinstance(name, str):
                continue
            found = index.setdefault(name.lower(), [])
            if isinstance(values, list):
                found.extend(values)
            else:
                found.append(values)
    return index


def _match_header(route: Route, view: InvocationView) -> bool:
    wanted = route.value
    for value in view.headers.get(route.name, ()):
        if value == wanted:
            return True
        # HTTP APIs join a repeated header's values with commas: "alice,bob"
        if isinstance(value, str) and "," in value:
            if wanted in (part.strip() for part in value.split(",")):
                return True
    return False


def _match_path(route: Route, view: InvocationView) -> bool:
    event = view.event
    if event is None:
        return False
    nodes: list[Any] = [event]
    for key, index in route.segments:
        found: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                if key == "*":
                    found.extend(node.values())
                elif key in node:
                    found.append(node[key])
            elif isinstance(node, list):
                if key == "*":
                    found.extend(node)
                elif index is not None and index < len(node):
                    found.append(node[index])
        if not found:
            return False
        nodes = found
    return any(_as_text(node) == route.value for node in nodes)


def _as_text(value: Any) -> str | None:
    """A found value as a path route compares it: JSON text for numbers, bools and null."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None  # an object or a list equals no value


def _match_attr(route: Route, view: InvocationView) -> bool:
    records = dig(view.event, "Records")
    if not isinstance(records, list):
        return False
    name, value = route.name, route.value
    return any(
        dig(record, "messageAttributes", name, "stringValue") == value  # SQS
        or dig(record, "Sns", "MessageAttributes", name, "Value") == value  # SNS
        for record in records
    )


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or None where a step is not an object or lacks the key."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _match_tenant(route: Route, view: InvocationView) -> bool:
    return view.tenant_id == route.value


def _match_sample(route: Route, view: InvocationView) -> bool:
    return view.sample_point < route.threshold


# --- Hints --------------------------------------------------------------------------------

_INVOKE = "aws lambda invoke --function-name FUNCTION"


def _header_hint(route: Route) -> str:
    line = f"{route.name}: {route.value}"
    return f'send the header "{line}" (curl -H {shlex.quote(line)} https://YOUR-API/...)'


def _path_hint(route: Route) -> str:
    example: Any = route.value
    for key, index in reversed(route.segments):
        if key == "*":
            example = [example]
        elif index is not None:
            example = [None] * index + [example]
        else:
            example = {key: example}
    payload = shlex.quote(json.dumps(example))
    return (f'send an event whose {route.name} is "{route.value}" ({_INVOKE} '
            f"--cli-binary-format raw-in-base64-out --payload {payload} response.json)")


def _tenant_hint(route: Route) -> str:
    tenant = shlex.quote(route.value)
    return f'invoke with the tenant id "{route.value}" ({_INVOKE} --tenant-id {tenant} response.json)'


def _attr_hint(route: Route) -> str:
    attributes = json.dumps({route.name: {"DataType": "String", "StringValue": route.value}})
    return (f'send a message with the attribute "{route.name}" = "{route.value}" (aws sqs '
            f"send-message --queue-url QUEUE-URL --message-body '{{}}' --message-attributes "
            f"{shlex.quote(attributes)}; the whole batch it arrives in comes to you)")


def _sample_hint(route: Route) -> str:
    return (f"nothing to send: {route.value}% of invocations come to you, chosen by request id "
            "(a retry with the same request id comes again)")


# kind -> (parse the text after "kind:", match an invocation, tell how to reach it)
_KINDS: dict[str, tuple[Callable[..., Route], Callable[..., bool], Callable[..., str]]] = {
    "header": (_header, _match_header, _header_hint),
    "path": (_path, _match_path, _path_hint),
    "tenant": (_tenant, _match_tenant, _tenant_hint),
    "attr": (_attr, _match_attr, _attr_hint),
    "sample": (_sample, _match_sample, _sample_hint),
}
