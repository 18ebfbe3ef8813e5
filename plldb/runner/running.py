"""Load a handler and run one invocation the way the runtime does.

:func:`error_from_exception` leaves out the leading frames of this module (the runtime drops
its own bootstrap.py frames the same way), so loading and running must stay in this module.

Standard library only: bundled into the runtime layer with the rest of :mod:`plldb.runner`.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from plldb.runner.context import (
    H_REQUEST_ID,
    JSON_CONTENT_TYPE,
    TRACE_ENV,
    LambdaContext,
    context_from_headers,
    header,
)
from plldb.runner.encoding import (
    error_body,
    marshal_response,
    unmarshal_event,
)
from plldb.runner.faults import (
    BUILT_IN_MODULE_CONFLICT,
    HANDLER_NOT_FOUND,
    IMPORT_MODULE_ERROR,
    MALFORMED_HANDLER_NAME,
    USER_CODE_SYNTAX_ERROR,
    HandlerLoadError,
    RuntimeFault,
    make_error,
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
