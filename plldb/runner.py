"""Run a Lambda handler exactly the way the Python runtime (awslambdaric) does.

Standard library only: this module is bundled into the runtime layer (the shim's pass-through
path runs the original handler with it inside AWS) and is used by the local executor, so a
handler behaves the same in the cloud, under the shim and on the developer's machine. Every
observable detail follows awslambdaric 4.x: the context object, the error dictionaries
(``errorMessage``, ``errorType``, ``requestId``, ``stackTrace``), the ``Runtime.*`` error types
and messages, and the JSON encoding of results (awslambdaric uses simplejson; :func:`to_json`
reproduces its output with the standard library).

Public API
----------
``build_context(request_id, deadline_ms, invoked_function_arn, client_context,
cognito_identity, environ, tenant_id=None) -> LambdaContext``
    The handler's context; ``client_context``/``cognito_identity`` are the raw JSON header
    values (or None). Raises :class:`RuntimeFault` (``Runtime.LambdaContextUnmarshalError``).
``context_from_headers(headers, environ) -> LambdaContext``
    Same, from the Runtime API ``/next`` response headers.
``load_handler(handler, import_module=importlib.import_module) -> Callable``
    Resolve ``_HANDLER`` (``"pkg/mod.func"``); raises :class:`HandlerLoadError` whose
    ``.error`` is the init error awslambdaric posts to ``/runtime/init/error``.
``run_handler(handler_fn, event, context, content_type="application/json",
environ=os.environ) -> Outcome``
    Decode the event, call the handler, encode the result or the error.
``run_invocation(handler, event, headers, environ=os.environ,
import_module=importlib.import_module) -> Outcome``
    All of the above for one Runtime API invocation (the shim's pass-through).
``error_from_exception(exc, request_id="") -> dict``
    awslambdaric's error dictionary for an exception raised by user code.
``to_json(value, environ=os.environ) -> str``, ``marshal_response(value, environ) ->
(bytes, content_type)``, ``error_body(error, environ) -> bytes``, ``error_log_text(error)``.
Header names of the Runtime API: ``H_REQUEST_ID`` ... ``H_FUNCTION_ERROR_TYPE``.
"""

from __future__ import annotations

import decimal
import importlib
import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# --- Runtime API (2018-06-01) header names ------------------------------------------------
H_REQUEST_ID = "Lambda-Runtime-Aws-Request-Id"
H_DEADLINE_MS = "Lambda-Runtime-Deadline-Ms"
H_FUNCTION_ARN = "Lambda-Runtime-Invoked-Function-Arn"
H_TRACE_ID = "Lambda-Runtime-Trace-Id"
H_CLIENT_CONTEXT = "Lambda-Runtime-Client-Context"
H_COGNITO_IDENTITY = "Lambda-Runtime-Cognito-Identity"
H_TENANT_ID = "Lambda-Runtime-Aws-Tenant-Id"
H_INVOCATION_ID = "Lambda-Runtime-Invocation-Id"
H_FUNCTION_ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
TRACE_ENV = "_X_AMZN_TRACE_ID"

JSON_CONTENT_TYPE = "application/json"
BINARY_CONTENT_TYPE = "application/unknown"

# --- Error types (awslambdaric FaultException) --------------------------------------------
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

# Runtimes whose encoder writes non-ASCII characters as is (awslambdaric's marshaller).
_UNESCAPED_UNICODE_RUNTIMES = frozenset(
    f"AWS_Lambda_python3.{minor}" for minor in (12, 13, 14, 15)
)
_W3C_FIELDS = ("traceparent", "tracestate", "baggage")


def make_error(message: str | None, error_type: str | None, stack_trace: list[str] | None,
               request_id: str | None = None) -> dict[str, Any]:
    """The runtime's error dictionary, keys in the runtime's order."""
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace or [],
    }


class RuntimeFault(Exception):
    """A failure the runtime reports with its own ``Runtime.*`` type; ``.error`` is the dict."""

    def __init__(self, error_type: str, message: str, stack_trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error = make_error(message, error_type, stack_trace)


class HandlerLoadError(RuntimeFault):
    """The handler could not be loaded: ``.error`` is what the runtime posts to init/error."""

    @classmethod
    def from_error(cls, error: dict[str, Any]) -> HandlerLoadError:
        fault = cls(error["errorType"], error["errorMessage"], error["stackTrace"])
        fault.error = error
        return fault


# --- Context --------------------------------------------------------------------------------


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __repr__(self) -> str:
        return (f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
                f"cognito_identity_pool_id={self.cognito_identity_pool_id}])")


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code",
                 "app_package_name")

    def __repr__(self) -> str:
        return (f"Client([installation_id={self.installation_id},app_title={self.app_title},"
                f"app_version_name={self.app_version_name},"
                f"app_version_code={self.app_version_code},"
                f"app_package_name={self.app_package_name}])")


class ClientContext:
    __slots__ = ("custom", "env", "client")

    def __repr__(self) -> str:
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


def _from_dict(cls: type, values: dict[str, Any] | None) -> Any:
    """Like the runtime: every slot set, missing keys as None; None stays None."""
    if values is None:
        return None
    obj = cls()
    for name in cls.__slots__:
        setattr(obj, name, values.get(name))
    return obj


class LambdaContext:
    """The ``context`` argument of a handler, with the runtime's attributes and methods."""

    def __init__(self, request_id: str, client_context: dict | None, cognito_identity: dict | None,
                 deadline_ms: int, invoked_function_arn: str | None, environ: Mapping[str, str],
                 tenant_id: str | None = None) -> None:
        self.aws_request_id = request_id
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
        # A string, as in the runtime (it reads the environment variable unchanged).
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = tenant_id
        self._w3c_fields = _pop_w3c(client_context)
        self.client_context = _from_dict(ClientContext, client_context)
        if self.client_context is not None:
            self.client_context.client = _from_dict(Client, self.client_context.client)
        self.identity = _from_dict(CognitoIdentity, {})
        if cognito_identity is not None:
            self.identity.cognito_identity_id = cognito_identity.get("cognitoIdentityId")
            self.identity.cognito_identity_pool_id = cognito_identity.get("cognitoIdentityPoolId")
        self._epoch_deadline_time_in_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the real (epoch) deadline, never negative."""
        remaining = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def w3c(self) -> dict[str, str]:
        """The W3C trace context that came in the client context (a copy)."""
        return dict(self._w3c_fields)

    def log(self, msg: Any) -> None:
        """Write to the runtime's log sink when one is installed, else to stdout."""
        for handler in logging.getLogger().handlers:
            if hasattr(handler, "log_sink"):
                handler.log_sink.log(str(msg))
                return
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (f"LambdaContext([aws_request_id={self.aws_request_id},"
                f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
                f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
                f"function_version={self.function_version},"
                f"invoked_function_arn={self.invoked_function_arn},"
                f"client_context={self.client_context},identity={self.identity},"
                f"tenant_id={self.tenant_id}])")


def _pop_w3c(client_context: Any) -> dict[str, str]:
    """The runtime removes ``w3c`` from the client context and keeps its string fields."""
    if not isinstance(client_context, dict) or "w3c" not in client_context:
        return {}
    raw = client_context.pop("w3c")
    if not isinstance(raw, dict):
        return {}
    return {key: raw[key] for key in _W3C_FIELDS if isinstance(raw.get(key), str)}


def _parse_json_header(value: str, name: str) -> Any:
    try:
        return json.loads(value)
    except Exception as exc:  # the runtime reports any parse failure the same way
        raise RuntimeFault(CONTEXT_UNMARSHAL_ERROR, f"Unable to parse {name} JSON: {exc}") from exc


def build_context(request_id: str, deadline_ms: int, invoked_function_arn: str,
                  client_context: str | None, cognito_identity: str | None,
                  environ: Mapping[str, str], tenant_id: str | None = None) -> LambdaContext:
    """The context for one invocation, from raw header values and the function's environment."""
    client = _parse_json_header(client_context, "Client Context") if client_context else None
    identity = _parse_json_header(cognito_identity, "Cognito Identity") if cognito_identity else None
    return LambdaContext(request_id, client, identity, int(deadline_ms), invoked_function_arn,
                         environ, tenant_id)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup (HTTP header names are case-insensitive)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def context_from_headers(headers: Mapping[str, str], environ: Mapping[str, str]) -> LambdaContext:
    """The context for the invocation described by a Runtime API ``/next`` response."""
    return build_context(
        header(headers, H_REQUEST_ID) or "",
        int(header(headers, H_DEADLINE_MS) or 0),
        header(headers, H_FUNCTION_ARN) or "",
        header(headers, H_CLIENT_CONTEXT),
        header(headers, H_COGNITO_IDENTITY),
        environ,
        header(headers, H_TENANT_ID),
    )


# --- Loading the handler --------------------------------------------------------------------


def load_handler(handler: str,
                 import_module: Callable[[str], ModuleType] = importlib.import_module) -> Callable:
    """Import the module of ``handler`` (``"dir/module.function"``) and return the function.

    ``import_module`` lets the local executor import into its own module namespace.
    Any failure raises :class:`HandlerLoadError` carrying the runtime's init error.
    """
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as exc:
        raise HandlerLoadError(MALFORMED_HANDLER_NAME, f"Bad handler '{handler}': {exc}") from exc
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise HandlerLoadError(BUILT_IN_MODULE_CONFLICT,
                               f"Cannot use built-in module {module_name} as a handler module")
    try:
        module = import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise HandlerLoadError(IMPORT_MODULE_ERROR,
                               f"Unable to import module '{module_name}': {exc}") from exc
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise HandlerLoadError(USER_CODE_SYNTAX_ERROR,
                               f"Syntax error in module '{module_name}': {exc}", trace) from exc
    except Exception as exc:  # module-level code failed: reported with its own type
        raise HandlerLoadError.from_error(error_from_exception(exc, request_id=None)) from exc
    try:
        return getattr(module, function_name)
    except AttributeError as exc:
        raise HandlerLoadError(HANDLER_NOT_FOUND,
                               f"Handler '{function_name}' missing on module '{module_name}'") from exc


# --- Errors -------------------------------------------------------------------------------


def error_from_exception(exc: BaseException, request_id: str | None = "") -> dict[str, Any]:
    """The runtime's error dict for an exception raised by user code.

    Like the runtime, leading frames of the machinery that called the handler (this module,
    as the runtime drops its own bootstrap.py frames) are left out, unless every frame is
    one of them; frames are formatted from (file, line, name, text) tuples, without carets.
    ``request_id=None`` gives an init error (``requestId`` empty).
    """
    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(exc.__traceback__)]
    for index, frame in enumerate(frames):
        if frame[0] != __file__:
            frames = frames[index:]
            break
    return make_error(str(exc), type(exc).__name__, traceback.format_list(frames), request_id)


def error_log_text(error: Mapping[str, Any]) -> str:
    """The line the runtime writes to the function's log for an error (text log format)."""
    description = "[ERROR]"
    if error.get("errorType"):
        description += " " + error["errorType"]
    if error.get("errorMessage"):
        description += (":" if error.get("errorType") else "") + " " + error["errorMessage"]
    lines = [description]
    if error.get("stackTrace") is not None:
        lines.append("Traceback (most recent call last):")
        for element in error["stackTrace"]:
            if element == "":
                lines.append("")
            for line in element.splitlines():
                stripped = line.lstrip(" ")
                lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    return "\r".join(lines) + "\n"


# --- JSON encoding (awslambdaric's simplejson encoder, reproduced) ----------------------------

_FLOAT_SPECIALS = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    return _FLOAT_SPECIALS.get(value) or float.__repr__(value)


class _Encoder:
    """simplejson's behaviour as configured by awslambdaric (use_decimal=False, allow_nan,
    namedtuple_as_object, bytes decoded as UTF-8, Decimal written as its exact text)."""

    def __init__(self, ensure_ascii: bool) -> None:
        self.quote = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
        self.markers: set[int] = set()

    def encode(self, value: Any) -> str:
        parts: list[str] = []
        try:
            self._value(value, parts)
        except RecursionError:
            raise RecursionError("maximum recursion depth exceeded while encoding a JSON object") from None
        return "".join(parts)

    def _key(self, key: Any) -> str:
        if isinstance(key, str):
            return key
        if isinstance(key, bytes):
            return key.decode("utf-8")
        if isinstance(key, float):
            return _float_text(key)
        if key is True or key is False or key is None:
            return {True: "true", False: "false", None: "null"}[key]
        if isinstance(key, int):
            return int.__repr__(key)
        raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")

    def _value(self, value: Any, out: list[str]) -> None:
        if value is None:
            out.append("null")
        elif value is True:
            out.append("true")
        elif value is False:
            out.append("false")
        elif isinstance(value, str):
            out.append(self.quote(value))
        elif isinstance(value, bytes):
            out.append(self.quote(value.decode("utf-8")))
        elif isinstance(value, int):
            out.append(int.__repr__(value))
        elif isinstance(value, float):
            out.append(_float_text(value))
        elif callable(getattr(value, "_asdict", None)):
            as_dict = value._asdict()
            if not isinstance(as_dict, dict):
                raise TypeError(f"_asdict() must return a dict, not {type(as_dict).__name__}")
            self._container(value, as_dict, out)
        elif isinstance(value, (list, tuple, dict)):
            self._container(value, value, out)
        elif isinstance(value, decimal.Decimal):
            out.append("NaN" if value.is_nan() else str(value))
        else:
            self._container(value, None, out)

    def _container(self, original: Any, value: Any, out: list[str]) -> None:
        marker = id(original)
        if marker in self.markers:
            raise ValueError("Circular reference detected")
        self.markers.add(marker)
        if value is None:
            raise TypeError(f"Object of type {type(original).__name__} is not JSON serializable")
        if isinstance(value, dict):
            out.append("{")
            for index, (key, item) in enumerate(value.items()):
                out.append(f"{', ' if index else ''}{self.quote(self._key(key))}: ")
                self._value(item, out)
            out.append("}")
        else:
            out.append("[")
            for index, item in enumerate(value):
                if index:
                    out.append(", ")
                self._value(item, out)
            out.append("]")
        self.markers.discard(marker)


def _ensure_ascii(environ: Mapping[str, str]) -> bool:
    return environ.get("AWS_EXECUTION_ENV") not in _UNESCAPED_UNICODE_RUNTIMES


def to_json(value: Any, environ: Mapping[str, str] = os.environ) -> str:
    """``value`` as the runtime's JSON text; raises TypeError/ValueError/RecursionError."""
    return _Encoder(_ensure_ascii(environ)).encode(value)


def marshal_response(value: Any, environ: Mapping[str, str] = os.environ) -> tuple[bytes, str]:
    """A handler's result as the runtime posts it: bytes as is, anything else as JSON."""
    if isinstance(value, bytes):
        return value, BINARY_CONTENT_TYPE
    try:
        text = to_json(value, environ)
    except Exception as exc:
        raise RuntimeFault(MARSHAL_ERROR, f"Unable to marshal response: {exc}") from exc
    return text.encode("utf-8"), JSON_CONTENT_TYPE


def unmarshal_event(event: bytes | str, content_type: str | None = JSON_CONTENT_TYPE) -> Any:
    """The event as the handler receives it (raw when the content type is not JSON)."""
    if content_type != JSON_CONTENT_TYPE:
        return event
    try:
        return json.loads(event)
    except Exception as exc:
        raise RuntimeFault(UNMARSHAL_ERROR, f"Unable to unmarshal input: {exc}") from exc


def error_body(error: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> bytes:
    """The body the runtime posts to ``/error`` or ``/init/error``."""
    return to_json(dict(error), environ).encode("utf-8")


# --- Running --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """The result of one invocation, ready to post to the Runtime API.

    ``body`` is the response (``ok``) or the error JSON (not ``ok``); ``error`` the error dict;
    ``init_error`` is True when the handler could not be loaded (the runtime would post it to
    ``/runtime/init/error`` and exit).
    """

    ok: bool
    body: bytes
    error: dict[str, Any] | None = None
    content_type: str = JSON_CONTENT_TYPE
    init_error: bool = False

    @property
    def error_type(self) -> str | None:
        """Value for the ``Lambda-Runtime-Function-Error-Type`` header."""
        return self.error["errorType"] if self.error else None

    @classmethod
    def failure(cls, error: dict[str, Any], environ: Mapping[str, str],
                init_error: bool = False) -> Outcome:
        return cls(False, error_body(error, environ), error, JSON_CONTENT_TYPE, init_error)


def run_handler(handler_fn: Callable, event: bytes | str, context: LambdaContext,
                content_type: str | None = JSON_CONTENT_TYPE,
                environ: Mapping[str, str] = os.environ) -> Outcome:
    """Decode ``event``, call ``handler_fn(event, context)`` and encode what comes back.

    Only ``Exception`` is caught, as in the runtime: SystemExit/KeyboardInterrupt propagate.
    """
    request_id = context.aws_request_id
    try:
        result = handler_fn(unmarshal_event(event, content_type), context)
        body, result_type = marshal_response(result, environ)
    except RuntimeFault as fault:
        return Outcome.failure({**fault.error, "requestId": request_id}, environ)
    except Exception as exc:
        return Outcome.failure(error_from_exception(exc, request_id), environ)
    return Outcome(True, body, None, result_type)


def run_invocation(handler: str | Callable, event: bytes, headers: Mapping[str, str],
                   environ: Mapping[str, str] = os.environ,
                   import_module: Callable[[str], ModuleType] = importlib.import_module) -> Outcome:
    """Run one invocation received from ``/next`` (its body and headers), like the runtime.

    ``handler`` is a ``_HANDLER`` string (loaded here; a load failure gives an Outcome with
    ``init_error``) or an already loaded function. The caller sets ``_X_AMZN_TRACE_ID``
    (:func:`set_trace_id`) when it runs inside the function's process.
    """
    if isinstance(handler, str):
        try:
            handler = load_handler(handler, import_module)
        except HandlerLoadError as fault:
            return Outcome.failure(fault.error, environ, init_error=True)
    try:
        context = context_from_headers(headers, environ)
    except RuntimeFault as fault:
        return Outcome.failure({**fault.error, "requestId": header(headers, H_REQUEST_ID) or ""}, environ)
    return run_handler(handler, event, context, header(headers, "Content-Type"), environ)


def set_trace_id(trace_id: str | None, environ: MutableMapping[str, str] = os.environ) -> None:
    """Expose the invocation's X-Ray trace id the way the runtime does (or remove it)."""
    if trace_id is not None:
        environ[TRACE_ENV] = trace_id
    else:
        environ.pop(TRACE_ENV, None)
