"""Route expressions of a shared stage: parsing, matching real AWS events, which session an
invocation goes to, and the route table as the lock item stores it."""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import shlex
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plldb import naming, routing
from plldb.route_table import Decision, Entry, choose, entries_from_item, entry_attribute
from plldb.routing import InvocationView, Route, RouteError, parse_routes
from tests.harness.aws_events import (
    BROWSER_HEADERS,
    alb_event,
    encoded,
    http_event,
    rest_event,
    sns_event,
    sqs_event,
)

ALICE = BROWSER_HEADERS + [("X-Debug-User", "alice")]
CALLER = "arn:aws:sts::123456789012:assumed-role/Developer/alice"


def view(event: dict | bytes | str, tenant: str | None = None, request_id: str = "r-1"):
    raw = event if isinstance(event, (bytes, str)) else encoded(event)
    return InvocationView(raw, tenant, request_id)


def matches(expression: str, event, **kwargs) -> bool:
    return Route.parse(expression).matches(view(event, **kwargs))


def entry(session: str, *routes: str, at: int = 1000, mirror: bool = False) -> Entry:
    return Entry(session, tuple(parse_routes(routes)), at, CALLER, mirror)


# --- Parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("header:X-Debug-User=alice", "header:x-debug-user=alice"),
        ("HEADER:x-debug-user=a=b, c", "header:x-debug-user=a=b, c"),
        ("path:Records.*.body=x", "path:Records.*.body=x"),
        ("path:detail.items.0.sku=A 1", "path:detail.items.0.sku=A 1"),
        ("tenant:acme", "tenant:acme"),
        ("tenant:a=b:c", "tenant:a=b:c"),
        ("attr:team=payments", "attr:team=payments"),
        ("sample:10%", "sample:10%"),
        ("sample:007.50%", "sample:7.5%"),
        ("sample:100.000%", "sample:100%"),
        ("sample:0.001%", "sample:0.001%"),
    ],
)
def test_expressions_parse_to_their_canonical_form(text: str, canonical: str) -> None:
    route = Route.parse(text)
    assert str(route) == canonical
    assert Route.parse(canonical) == route


def test_fields_of_a_parsed_route() -> None:
    assert Route.parse("header:X-User=Bob") == Route("header", "x-user", "Bob")
    assert Route.parse("path:a.b=1").kind == "path"
    assert Route.parse("sample:12.5%").value == "12.5"


_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=30)
_KEY = _TEXT.filter(lambda key: "." not in key and "=" not in key)
_TOKEN = st.text("abcXYZ019-_.!#$%&'*+^`|~", min_size=1, max_size=20)
_HEADER_VALUE = _TEXT.filter(lambda value: value == value.strip(" \t"))
_ROUTES = st.one_of(
    st.builds(lambda n, v: f"header:{n}={v}", _TOKEN, _HEADER_VALUE),
    st.builds(lambda ks, v: f"path:{'.'.join(ks)}={v}", st.lists(_KEY, min_size=1, max_size=4),
              _TEXT),
    st.builds(lambda v: f"tenant:{v}", _TEXT),
    st.builds(lambda n, v: f"attr:{n}={v}", _TEXT.filter(lambda n: "=" not in n), _TEXT),
    st.builds(lambda w, f: f"sample:{w}{f}%", st.integers(1, 99), st.sampled_from(
        ["", ".5", ".25", ".000001", ".10"])),
)


@given(_ROUTES)
def test_the_canonical_form_parses_back_to_the_same_route(text: str) -> None:
    route = Route.parse(text)
    assert Route.parse(str(route)) == route
    assert str(Route.parse(str(route))) == str(route)
    assert hash(Route.parse(str(route))) == hash(route)


FORMS_LISTED = "Accepted forms: header:NAME=VALUE"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x-debug-user=alice", "no kind: start with header:, path:, tenant:, attr: or sample:"),
        ("headers:x=1", "unknown kind 'headers'"),
        ("header:x-debug-user", "no '=': write header:NAME=VALUE"),
        ("path:detail.user", "no '=': write path:A.B.C=VALUE"),
        ("attr:team", "no '=': write attr:NAME=VALUE"),
        ("header:=alice", "the name before '=' is empty"),
        ("attr:=x", "the name before '=' is empty"),
        ("path:=x", "the path before '=' is empty"),
        ("header:x-user=", "the value after '=' is empty"),
        ("path:a.b=", "the value after '=' is empty"),
        ("attr:team=", "the value after '=' is empty"),
        ("tenant:", "the tenant id after 'tenant:' is empty"),
        ("header:x user=a", "'x user' is not an HTTP header name"),
        ("header:x:user=a", "'x:user' is not an HTTP header name"),
        ("header:x-user= alice", "the value starts or ends with a space"),
        ("header:x-user=alice\t", "control character '\\t'"),
        ("path:a..b=1", "the path 'a..b' has an empty key: separate keys with one dot"),
        ("path:.a=1", "the path '.a' has an empty key"),
        ("sample:10", "a sample is a percent with a '%' sign"),
        ("sample:ten%", "a sample is a percent with a '%' sign"),
        ("sample:-5%", "a sample is a percent with a '%' sign"),
        ("sample:1e2%", "a sample is a percent with a '%' sign"),
        ("sample:0%", "0% is out of range: above 0% and at most 100%"),
        ("sample:0.000%", "0.000% is out of range"),
        ("sample:100.5%", "100.5% is out of range"),
        ("sample:250%", "250% is out of range"),
        ("tenant:acme\n", "control character '\\n'"),
        ("attr:team=a\x00b", "control character '\\x00'"),
        ("path:a=\x7f", "control character '\\x7f'"),
        ("header:x=" + "a" * 200, "209 characters; at most 200"),
    ],
)
def test_a_malformed_expression_says_what_is_wrong_and_what_is_accepted(
    text: str, problem: str
) -> None:
    with pytest.raises(RouteError) as caught:
        Route.parse(text)
    message = str(caught.value)
    assert problem in message
    assert message.startswith("route ")
    assert FORMS_LISTED in message and "sample:P%" in message
    assert caught.value.expression == text and caught.value.problem in message


def test_a_long_expression_is_shortened_in_the_message() -> None:
    with pytest.raises(RouteError, match=r"route 'header:x=aaaa[a]*\.\.\.': 261 characters"):
        Route.parse("header:x=" + "a" * 252)


def test_a_route_that_is_not_text_is_refused() -> None:
    with pytest.raises(RouteError, match="a route is text, not int"):
        Route.parse(42)  # type: ignore[arg-type]


def test_parse_routes_checks_count_duplicates_and_type() -> None:
    assert parse_routes([]) == []
    assert [str(r) for r in parse_routes(["tenant:a", "header:X=1"])] == ["tenant:a", "header:x=1"]
    eleven = [f"tenant:t{i}" for i in range(routing.MAX_ROUTES + 1)]
    with pytest.raises(RouteError, match="routes: 11 given; at most 10 per session"):
        parse_routes(eleven)
    assert len(parse_routes(eleven[:10])) == 10
    with pytest.raises(RouteError, match=r"route 'header:X-User=a': given twice"):
        parse_routes(["header:x-user=a", "header:X-User=a"])
    with pytest.raises(RouteError, match="give a list of expressions, not str"):
        parse_routes("header:x=1")
    with pytest.raises(RouteError, match="give a list of expressions, not NoneType"):
        parse_routes(None)  # type: ignore[arg-type]
    with pytest.raises(RouteError, match="route 'nope': no kind"):
        parse_routes(["tenant:a", "nope"])


# --- Headers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [rest_event, http_event, alb_event, lambda h: alb_event(h, multi_value=True)],
    ids=["rest", "http", "alb", "alb-multi-value"],
)
def test_header_routes_match_every_http_event_kind(build) -> None:
    event = build(ALICE)
    assert matches("header:x-debug-user=alice", event)
    assert matches("header:X-DEBUG-USER=alice", event)  # names: any case
    assert not matches("header:x-debug-user=Alice", event)  # values: exactly
    assert not matches("header:x-debug-user=ali", event)
    assert not matches("header:x-debug-users=alice", event)
    assert not matches("header:x-debug-user=alice", build(BROWSER_HEADERS))


def test_a_repeated_header_matches_on_any_of_its_values() -> None:
    headers = BROWSER_HEADERS + [("X-Debug-User", "alice"), ("x-debug-user", "bob")]
    rest = rest_event(headers)
    assert rest["headers"]["x-debug-user"] == "bob"  # REST keeps the last in headers ...
    assert matches("header:x-debug-user=alice", rest)  # ... and all in multiValueHeaders
    http = http_event(headers)
    assert http["headers"]["x-debug-user"] == "alice,bob"
    assert matches("header:x-debug-user=alice", http)
    assert matches("header:x-debug-user=bob", http)
    assert matches("header:x-debug-user=alice,bob", http)
    assert not matches("header:x-debug-user=alice,", http)
    assert matches("header:x-debug-user=alice", alb_event(headers, multi_value=True))
    assert not matches("header:x-debug-user=alice", alb_event(headers))  # ALB keeps the last


def test_comma_parts_are_trimmed() -> None:
    event = http_event(BROWSER_HEADERS)
    assert matches("header:x-forwarded-for=130.176.0.0", event)
    assert matches("header:x-forwarded-for=203.0.113.17", event)


def test_header_routes_match_nothing_without_headers() -> None:
    rest = rest_event([])
    assert rest["headers"] is None and rest["multiValueHeaders"] is None
    assert not matches("header:x-debug-user=alice", rest)
    assert not matches("header:x-debug-user=alice", {"x-debug-user": "alice"})
    assert not matches("header:x-debug-user=alice", b"not json")
    assert not matches("header:x-debug-user=alice", json.dumps([{"headers": {}}]))


# --- Paths --------------------------------------------------------------------------------

ORDER = {
    "detail-type": "OrderPlaced",
    "detail": {"user": "alice", "items": [{"sku": "A1", "qty": 2}, {"sku": "B7", "qty": 1}],
               "express": True, "coupon": None, "total": 12.5, "id": 42},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("path:detail-type=OrderPlaced", True),
        ("path:detail.user=alice", True),
        ("path:detail.user=bob", False),
        ("path:detail.items.0.sku=A1", True),
        ("path:detail.items.1.sku=A1", False),
        ("path:detail.items.2.sku=A1", False),  # past the end
        ("path:detail.items.*.sku=B7", True),
        ("path:detail.items.*.sku=C9", False),
        ("path:detail.*=alice", True),  # any value of an object
        ("path:*.user=alice", True),
        ("path:detail.items.*.qty=2", True),  # numbers as JSON text
        ("path:detail.express=true", True),
        ("path:detail.express=True", False),
        ("path:detail.coupon=null", True),
        ("path:detail.total=12.5", True),
        ("path:detail.id=42", True),
        ("path:detail.id=42.0", False),
        ("path:detail.items={}", False),  # an object or a list equals nothing
        ("path:detail.user.name=alice", False),  # into a string
        ("path:detail.items.sku=A1", False),  # a key into a list
        ("path:detail.items.-1.sku=B7", False),  # no negative indexes
    ],
)
def test_path_routes(expression: str, expected: bool) -> None:
    assert matches(expression, ORDER) is expected


def test_a_numeric_key_of_an_object_is_a_key() -> None:
    assert matches("path:codes.404=missing", {"codes": {"404": "missing"}})


def test_path_routes_into_an_sqs_batch_match_any_record() -> None:
    batch = sqs_event([("first", {}), ('{"user": "bob"}', {}), ("third", {})])
    assert matches('path:Records.*.body={"user": "bob"}', batch)
    assert matches("path:Records.2.body=third", batch)
    assert not matches("path:Records.3.body=third", batch)


def test_path_routes_match_nothing_in_an_event_that_is_not_a_json_object() -> None:
    for raw in (b"not json", b"\xff\xfe\x00", b'"detail"', b"[1, 2]", b"", "[" * 100_000):
        assert not matches("path:0=1", raw)


# --- Tenants, attributes, samples -----------------------------------------------------------


def test_tenant_routes_compare_the_runtime_api_tenant_id() -> None:
    assert matches("tenant:acme", b"{}", tenant="acme")
    assert not matches("tenant:acme", b"{}", tenant="acme-eu")
    assert not matches("tenant:acme", b"{}", tenant=None)
    assert not matches("tenant:acme", {"tenant": "acme", "tenantId": "acme"})


def test_attr_routes_match_when_any_record_of_an_sqs_batch_has_the_attribute() -> None:
    batch = sqs_event([("one", {"team": "search"}), ("two", {"team": "payments"}), ("3", {})])
    assert matches("attr:team=payments", batch)
    assert matches("attr:team=search", batch)
    assert not matches("attr:team=Payments", batch)
    assert not matches("attr:Team=payments", batch)  # attribute names are case-sensitive
    assert not matches("attr:owner=payments", batch)
    assert not matches("attr:team=payments", sqs_event([("x", {"owner": "payments"})]))


def test_attr_routes_match_sns_attributes() -> None:
    event = sns_event("order 42", {"team": "payments", "priority": "1"})
    assert matches("attr:team=payments", event)
    assert matches("attr:priority=1", event)
    assert not matches("attr:team=search", event)


def test_attr_routes_ignore_binary_and_malformed_attributes() -> None:
    binary = sqs_event([("x", {})])
    binary["Records"][0]["messageAttributes"]["team"] = {
        "binaryValue": "cGF5bWVudHM=", "dataType": "Binary"}
    assert not matches("attr:team=payments", binary)
    for records in (None, "x", [None, "x", {"messageAttributes": ["team"]}, {"Sns": "x"}]):
        assert not matches("attr:team=payments", {"Records": records})
    assert not matches("attr:team=payments", rest_event(ALICE))


def spec_point(request_id: str) -> float:
    """The brief's formula, in floating point."""
    return int(hashlib.sha256(request_id.encode()).hexdigest()[:8], 16) / 2**32 * 100


def test_samples_follow_the_sha256_of_the_request_id() -> None:
    ids = [f"8f5b4e2a-{n:04x}-4c1e-9a0b-1c2d3e4f5a6b" for n in range(2000)]
    for percent in ("0.5", "10", "33.333", "50", "99.9"):
        route = Route.parse(f"sample:{percent}%")
        taken = [rid for rid in ids if route.matches(view(b"{}", request_id=rid))]
        assert taken == [rid for rid in ids if spec_point(rid) < float(percent)]
        assert abs(len(taken) / len(ids) * 100 - float(percent)) < 3
    assert all(Route.parse("sample:100%").matches(view(b"x", request_id=rid)) for rid in ids)


def test_a_sample_boundary_is_exact() -> None:
    rid = "c0ffee00-0000-4000-8000-000000000000"
    point = int(hashlib.sha256(rid.encode()).hexdigest()[:8], 16)
    scaled = point * 100 * 10**32 // 2**32  # point * 100 / 2**32 has at most 32 decimals
    exact = f"{scaled // 10**32}.{scaled % 10**32:032d}"  # P with point / 2**32 * 100 == P
    below = Route.parse(f"sample:{exact}%")  # point / 2**32 * 100 < P is false at P itself
    assert not below.matches(view(b"{}", request_id=rid))
    assert Route.parse(f"sample:{exact}1%").matches(view(b"{}", request_id=rid))


def test_a_retried_request_id_routes_the_same_way() -> None:
    route = Route.parse("sample:50%")
    for rid in ("a", "b", "c", "d", "e", "f"):
        first = route.matches(view(b"{}", request_id=rid))
        assert all(route.matches(view(b"{}", request_id=rid)) == first for _ in range(3))


# --- Choosing -------------------------------------------------------------------------------


def test_the_earliest_attached_session_that_matches_gets_the_invocation() -> None:
    alice_late = entry("s-a", "header:x-debug-user=alice", at=3000)
    alice_early = entry("s-b", "header:x-debug-user=alice", at=2000)
    bob = entry("s-c", "header:x-debug-user=bob", at=1000)
    event = view(rest_event(ALICE))
    assert choose([alice_late, bob, alice_early], event) == Decision(alice_early, ())
    tie = entry("s-0", "tenant:zzz", "header:x-debug-user=alice", at=2000)
    assert choose([alice_late, alice_early, tie, bob], event).debug is tie  # then session id
    assert choose([bob], event) == Decision(None, ())
    assert choose([], event) == Decision(None, ())


def test_a_session_without_routes_takes_everything() -> None:
    everything = entry("s-all", at=5000)
    alice = entry("s-alice", "header:x-debug-user=alice", at=6000)
    assert choose([alice, everything], view(rest_event(ALICE))).debug is everything
    assert choose([alice, everything], view(b"not even json")).debug is everything


def test_mirrors_get_what_no_session_takes_and_nothing_routed() -> None:
    debug = entry("s-debug", "header:x-debug-user=alice", at=3000)
    mirror_all = entry("s-m1", at=2000, mirror=True)
    mirror_bob = entry("s-m2", "header:x-debug-user=bob", at=1000, mirror=True)
    mirror_all_late = entry("s-m3", at=4000, mirror=True)
    table = [mirror_all_late, debug, mirror_all, mirror_bob]
    assert choose(table, view(rest_event(ALICE))) == Decision(debug, ())  # not mirrored
    assert choose(table, view(rest_event(BROWSER_HEADERS))) == Decision(
        None, (mirror_all, mirror_all_late)
    )
    bob = view(rest_event(BROWSER_HEADERS + [("X-Debug-User", "bob")]))
    assert choose(table, bob) == Decision(None, (mirror_bob, mirror_all, mirror_all_late))


def test_a_mirror_earlier_than_a_debug_session_does_not_take_the_invocation() -> None:
    mirror = entry("s-m", "tenant:acme", at=1, mirror=True)
    debug = entry("s-d", "tenant:acme", at=2)
    assert choose([mirror, debug], view(b"{}", tenant="acme")) == Decision(debug, ())


def test_a_sample_or_tenant_table_never_parses_the_event() -> None:
    table = [entry("s-1", "tenant:acme", at=1), entry("s-2", "sample:100%", at=2),
             entry("s-3", "sample:0.0001%", at=0, mirror=True)]
    for raw in (b"\x00 not json", encoded(rest_event(ALICE))):
        seen = view(raw, tenant="globex")
        assert choose(table, seen).debug is table[1]
        assert not seen.parsed
    seen = view(b"\x00 not json", tenant="acme")
    assert choose(table, seen).debug is table[0] and not seen.parsed


def test_the_event_is_parsed_once_for_every_route_that_reads_it(monkeypatch) -> None:
    calls = []
    original = routing._parse_object
    monkeypatch.setattr(routing, "_parse_object", lambda raw: calls.append(raw) or original(raw))
    table = [entry(f"s-{n:02d}", f"header:x-debug-user=u{n}", f"path:detail.n={n}",
                   f"attr:n={n}", at=n) for n in range(20)]
    seen = view(rest_event(ALICE))
    assert choose(table, seen) == Decision(None, ())
    assert len(calls) == 1 and seen.parsed
    assert choose(table, view(b"not json")) == Decision(None, ())
    assert len(calls) == 2


# --- The route table in the lock item -----------------------------------------------------


def lock_item(routes: dict) -> dict:
    return {
        "SessionId": {"S": naming.stack_lock_key("orders-dev")},
        naming.A_KIND: {"S": naming.KIND_STACK_LOCK},
        naming.A_MODE: {"S": naming.MODE_SHARED},
        naming.A_ROUTES: {"M": routes},
    }


def test_entries_round_trip_through_the_lock_item() -> None:
    item = lock_item({
        "s-b": entry_attribute(["header:X-Debug-User=alice", "tenant:acme"], 2000, CALLER, False),
        "s-a": entry_attribute([Route.parse("sample:5%")], 1000, "arn:aws:iam::1:user/bob", True),
        "s-c": entry_attribute([], 1000, CALLER, False),
    })
    item = json.loads(json.dumps(item))  # as it comes back over the wire
    assert entries_from_item(item) == [
        Entry("s-a", (Route("sample", "", "5"),), 1000, "arn:aws:iam::1:user/bob", True),
        Entry("s-c", (), 1000, CALLER, False),
        Entry("s-b", (Route("header", "x-debug-user", "alice"), Route("tenant", "", "acme")),
              2000, CALLER, False),
    ]


def test_entry_attribute_is_canonical_dynamodb_json() -> None:
    assert entry_attribute(["header:X-User=a"], 1_744_202_096_123, CALLER, True) == {
        "M": {
            "Routes": {"L": [{"S": "header:x-user=a"}]},
            "At": {"N": "1744202096123"},
            "By": {"S": CALLER},
            "Mirror": {"BOOL": True},
        }
    }
    with pytest.raises(RouteError, match="given twice"):
        entry_attribute(["tenant:a", "tenant:a"], 1, CALLER, False)
    with pytest.raises(RouteError, match="11 given"):
        entry_attribute([f"tenant:{n}" for n in range(11)], 1, CALLER, False)


def test_malformed_entries_are_skipped_and_logged(caplog) -> None:
    good = entry_attribute(["tenant:acme"], 1000, CALLER, False)

    def spoiled(**changes) -> dict:
        fields = dict(good["M"])
        for name, value in changes.items():
            if value is None:
                fields.pop(name)
            else:
                fields[name] = value
        return {"M": fields}

    item = lock_item({
        "s-good": good,
        "s-no-at": spoiled(At=None),
        "s-at-text": spoiled(At={"S": "1000"}),
        "s-at-float": spoiled(At={"N": "1000.5"}),
        "s-no-by": spoiled(By=None),
        "s-mirror-text": spoiled(Mirror={"S": "true"}),
        "s-routes-map": spoiled(Routes={"M": {}}),
        "s-route-number": spoiled(Routes={"L": [{"N": "1"}]}),
        "s-bad-route": spoiled(Routes={"L": [{"S": "tenant:acme"}, {"S": "sample:0%"}]}),
        "s-not-a-map": {"S": "tenant:acme"},
        "": good,
    })
    with caplog.at_level(logging.WARNING, logger="plldb.routing"):
        assert [e.session_id for e in entries_from_item(item)] == ["s-good"]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 10
    assert any("s-bad-route is skipped: route 'sample:0%'" in m for m in skipped)
    assert any("s-no-at is skipped: At is not a DynamoDB N" in m for m in skipped)
    assert any("s-at-float is skipped: At is '1000.5', not epoch milliseconds" in m
               for m in skipped)


@pytest.mark.parametrize(
    "item",
    [None, {}, lock_item({}), {naming.A_ROUTES: {"L": []}}, {naming.A_ROUTES: "x"}, "item"],
)
def test_an_item_without_a_table_has_no_entries(item) -> None:
    assert entries_from_item(item) == []


# --- Hints --------------------------------------------------------------------------------


def test_the_header_hint_is_a_curl_command() -> None:
    assert Route.parse("header:X-Debug-User=alice").hint() == (
        "send the header \"x-debug-user: alice\" "
        "(curl -H 'x-debug-user: alice' https://YOUR-API/...)"
    )
    tricky = Route.parse("header:x-user=o'brien").hint()
    assert shlex.split(tricky.split("curl ")[1])[1] == "x-user: o'brien"


@pytest.mark.parametrize(
    "expression", ["path:detail.user=alice", "path:Records.*.body=x", "path:a.2.b=true"]
)
def test_the_path_hint_sends_an_event_the_route_takes(expression: str) -> None:
    route = Route.parse(expression)
    words = shlex.split(route.hint().split("(", 1)[1].rstrip(")"))
    assert words[:4] == ["aws", "lambda", "invoke", "--function-name"]
    payload = words[words.index("--payload") + 1]
    assert route.matches(view(payload))


def test_the_tenant_attr_and_sample_hints() -> None:
    tenant = Route.parse("tenant:acme corp").hint()
    assert "--tenant-id 'acme corp'" in tenant and tenant.startswith("invoke with the tenant id")
    attr = Route.parse("attr:team=payments").hint()
    words = shlex.split(attr.split("(", 1)[1].split(";")[0])
    sent = json.loads(words[words.index("--message-attributes") + 1])
    assert sent == {"team": {"DataType": "String", "StringValue": "payments"}}
    assert "whole batch" in attr
    assert Route.parse("sample:2.5%").hint().startswith("nothing to send: 2.5% of invocations")


# --- Bundling -------------------------------------------------------------------------------


def test_routing_imports_only_the_standard_library_and_shared_modules() -> None:
    tree = ast.parse(Path(routing.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            imported.update(names if node.module == "plldb" else [node.module])
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside <= {"plldb.naming", "plldb.limits"}, outside
