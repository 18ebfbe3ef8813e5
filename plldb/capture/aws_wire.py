"""AWS calls as JSON, and the botocore hook that records or answers them (hermetic replay).

Every botocore call goes through ``BaseClient._make_api_call``. :func:`install` wraps that
one method (as tracing libraries such as OpenTelemetry and the X-Ray SDK do) so that a call
made on a thread that ``resolve()`` maps to a :class:`Tap` is handed to it; any other call
(plldb's own, another thread's) goes on untouched. On the first such call of a client,
handlers are registered on that client's own event emitter, the mechanism botocore's
Stubber builds on:

- ``before-parameter-build`` (last, so after boto3's DynamoDB resource turned Python values
  into attribute values): the call starts, with its low-level parameters;
- ``before-call`` (first): a replaying tap answers here, and nothing is signed or sent;
- ``after-call.<service>.<Operation>`` (the operation's own event, whose handlers run before
  boto3's ``after-call.dynamodb`` turns the answer into Python values in place): the
  response, with its status (botocore raises the error class from it, as in the cloud);
- ``after-call-error``: a failure that never got a response (connection, timeout).

Per-call state rides in botocore's request context (one dict per call), so concurrent calls
never share it. A call made while another is in flight on the same thread (a credential
refresh during signing, S3's region redirect) is the SDK's own and is not recorded.

This module imports only the standard library, botocore and its sibling
:mod:`aws_values` (relatively), because ``plldb events export`` copies it beside an exported
test, which must run where plldb is not installed.
"""

from __future__ import annotations

import difflib
import json
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import botocore.client
from botocore.awsrequest import AWSResponse

# relative: the exported copy sits in a package of its own
from .aws_values import (
    UnanswerableCall,
    decode_response,
    encode_error,
    normal_params,
    private,
    raise_error,
    snapshot_response,
)

log = logging.getLogger(__name__)

_CONTEXT_KEY = "plldb_call"
INIT, INVOKE = "init", "invoke"  # a call made while the modules load, or by the handler
# Operations whose answer depends on their parameters: never answered by another call's.
READ_PREFIXES = ("Get", "List", "Describe", "Head", "Query", "Scan", "BatchGet", "Receive",
                 "Select", "Search", "Lookup", "Filter", "Invoke", "Decrypt", "Generate", "Assume")


def call_key(call: dict[str, Any]) -> tuple[str, str, str]:
    """What matches a call to a recorded one: service, operation and parameters."""
    return call["service"], call["operation"], canonical(call["params"])


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def call_name(call: dict[str, Any]) -> str:
    """``s3:PutObject {"Bucket": "b", ...}`` (parameters cut at 200 characters)."""
    text = canonical(call["params"])
    return f"{call['service']}:{call['operation']} {text[:200]}{'…' if len(text) > 200 else ''}"


def is_read(operation: str) -> bool:
    return operation.startswith(READ_PREFIXES)


class Player:
    """Answers calls from a record's calls: the same service, operation and parameters
    first (each recorded call once, in order; a repeat gets the last one's answer again). A
    write (any operation that is not a read, :data:`READ_PREFIXES`) whose parameters changed
    gets the answer of the first unused recorded call of its operation, and shows as
    changed; anything else is :class:`UnanswerableCall`, naming the nearest recorded call."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls
        self._used = [False] * len(calls)
        self._lock = threading.Lock()

    def answer(self, call: dict[str, Any]) -> dict[str, Any]:
        """The recorded call that answers ``call`` (normalized as in the record)."""
        key = call_key(call)
        with self._lock:
            same = [i for i, c in enumerate(self.calls) if call_key(c) == key]
            fresh = [i for i in same if not self._used[i]]
            if not same and not is_read(call["operation"]):
                fresh = [i for i, c in enumerate(self.calls) if not self._used[i]
                         and (c["service"], c["operation"]) == key[:2]]
            chosen = fresh[0] if fresh else same[-1] if same else None
            if chosen is None:
                raise UnanswerableCall(self.unrecorded(call))
            self._used[chosen] = True
            return self.calls[chosen]

    def unrecorded(self, call: dict[str, Any]) -> str:
        nearest = self.nearest(call)
        where = f"the nearest recorded call is {call_name(nearest)}" if nearest else "the record holds no AWS call"
        return f"{call_name(call)} was not recorded ({where}): replay with --live to call AWS"

    def nearest(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The recorded call most like ``call``: same operation, then same service, then the
        most parameters in common."""
        def likeness(other: dict[str, Any]) -> tuple[bool, bool, float]:
            service = other["service"] == call["service"]
            ratio = difflib.SequenceMatcher(None, canonical(other["params"]), canonical(call["params"])).ratio()
            return service and other["operation"] == call["operation"], service, ratio
        return max(self.calls, key=likeness, default=None)


class Tape:
    """One invocation's calls (a :class:`Tap`); with a ``player``, each call is
    answered from a record instead of going to AWS, and what could not be is kept in
    ``missed``."""

    def __init__(self, keep_secrets: bool = False, redact_paths: tuple[tuple[str, ...], ...] = (),
                 player: Player | None = None) -> None:
        self.keep_secrets = keep_secrets
        self.redact_paths = redact_paths
        self.player = player
        self.phase = INVOKE
        self.calls: list[dict[str, Any]] = []
        self.http_calls: list[dict[str, str]] = []
        self.missed: list[str] = []
        self._lock = threading.Lock()

    def begin(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        entry = {"service": service, "operation": operation, "phase": self.phase,
                 "params": normal_params(params, self.keep_secrets, self.redact_paths)}
        with self._lock:
            self.calls.append(entry)
        return entry

    def answer(self, entry: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        if self.player is None:
            return None
        try:
            recorded = self.player.answer(entry)
            if "error" in recorded:
                entry["error"] = recorded["error"]
                raise_error(recorded["error"])
            return recorded["status"], decode_response(recorded["response"])
        except UnanswerableCall as exc:
            with self._lock:
                self.missed.append(str(exc))
            raise

    def finish(self, entry: dict[str, Any], status: int, parsed: dict[str, Any]) -> None:
        entry["status"] = status
        if self.player is None:  # a replay's calls are compared by their parameters only
            response = snapshot_response(parsed)
            entry["response"] = private(response, self.keep_secrets, self.redact_paths)

    def fail(self, entry: dict[str, Any], exc: BaseException) -> None:
        entry["error"] = encode_error(exc)

    def listed_http(self, method: str, host: str, path: str) -> None:
        with self._lock:
            self.http_calls.append({"method": method, "host": host, "path": path.split("?", 1)[0]})

    def snapshot(self) -> list[dict[str, Any]]:
        """The calls so far; one still waiting for its answer is marked unfinished."""
        with self._lock:
            calls = [dict(c) for c in self.calls]
        for call in calls:
            if "status" not in call and "error" not in call:
                call["error"] = {"type": "Unfinished", "module": "plldb", "kwargs": None,
                                 "message": "the call had no answer when the invocation was answered"}
        return calls


# --- The hook ---------------------------------------------------------------------------------


class Tap(Protocol):
    """Where one invocation's calls go (:func:`install`)."""

    def begin(self, service: str, operation: str, params: dict[str, Any]) -> Any:
        """A call starts: returns what identifies it to the other methods."""

    def answer(self, entry: Any) -> tuple[int, dict[str, Any]] | None:
        """The status and parsed response to give instead of calling AWS, or None to call it."""

    def finish(self, entry: Any, status: int, parsed: dict[str, Any]) -> None:
        """The call got a response (``parsed`` may be changed: streams are replaced)."""

    def fail(self, entry: Any, exc: BaseException) -> None:
        """The call failed without a response."""


_local = threading.local()
_original: Callable[..., Any] | None = None
_resolve: Callable[[], Tap | None] = lambda: None  # noqa: E731 - replaced by install
_hooked: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()  # client -> operations
_install_lock = threading.Lock()


def in_call() -> bool:
    """Whether this thread is inside a botocore call (its HTTP requests are the SDK's)."""
    return bool(getattr(_local, "busy", False))


def install(resolve: Callable[[], Tap | None]) -> None:
    """Send every botocore call made where ``resolve()`` gives a tap to that tap (see the
    module's text); calls where it gives None go on as before."""
    global _original, _resolve
    with _install_lock:
        _resolve = resolve
        if _original is None:
            _original = botocore.client.BaseClient._make_api_call
            botocore.client.BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]


def uninstall() -> None:
    """Put botocore back as it was (clients keep inert handlers: they find no tap)."""
    global _original, _resolve
    with _install_lock:
        if _original is not None:
            botocore.client.BaseClient._make_api_call = _original  # type: ignore[method-assign]
        _original, _resolve = None, lambda: None


def _make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
    original = _original or botocore.client.BaseClient._make_api_call
    tap = None if getattr(_local, "busy", False) else _resolve()
    if tap is None:
        return original(client, operation_name, api_params)
    _hook(client, operation_name)
    _local.busy, _local.pending = True, tap
    try:
        return original(client, operation_name, api_params)
    finally:
        _local.busy, _local.pending = False, None


def _hook(client: Any, operation: str) -> None:
    """Register the handlers on ``client`` (once), and on its ``operation``'s own
    ``after-call`` event: handlers of a more specific event run first, and boto3's DynamoDB
    resource changes the answer in place on ``after-call.dynamodb``."""
    operations = _hooked.get(client)
    if operations is not None and operation in operations:
        return
    with _install_lock:
        operations = _hooked.get(client)
        if operations is None:
            events = client.meta.events
            events.register_last("before-parameter-build", _on_params, unique_id="plldb-params")
            events.register_first("before-call", _on_call, unique_id="plldb-call")
            events.register_first("after-call-error", _on_error, unique_id="plldb-error")
            operations = _hooked.setdefault(client, set())
        if operation not in operations:
            service_id = client.meta.service_model.service_id.hyphenize()
            client.meta.events.register_first(f"after-call.{service_id}.{operation}", _on_response,
                                              unique_id=f"plldb-response-{operation}")
            operations.add(operation)


def _on_params(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
    tap = getattr(_local, "pending", None)
    if tap is None:
        return
    _local.pending = None  # a nested call on this thread is the SDK's own
    try:
        context[_CONTEXT_KEY] = (tap, tap.begin(model.service_model.service_name, model.name, params))
    except Exception:  # noqa: BLE001 - a call that cannot be written down still goes through
        log.warning("%s:%s not recorded", model.service_model.service_name, model.name, exc_info=True)


def _on_call(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> Any:
    held = context.get(_CONTEXT_KEY)
    if held is None:
        return None
    tap, entry = held
    answer = tap.answer(entry)  # a replay's refusal reaches the handler, as a failed call would
    if answer is None:
        return None
    status, parsed = answer
    return AWSResponse(params.get("url"), status, {}, None), parsed


def _on_response(http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    held = context.get(_CONTEXT_KEY)
    if held is None:
        return
    try:
        held[0].finish(held[1], http_response.status_code, parsed)
    except Exception:  # noqa: BLE001 - the handler still gets its answer
        log.warning("the response of a call was not recorded", exc_info=True)


def _on_error(exception: BaseException, context: dict[str, Any], **_: Any) -> None:
    held = context.get(_CONTEXT_KEY)
    if held is not None:
        held[0].fail(held[1], exception)
