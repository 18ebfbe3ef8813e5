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

The package's modules: :mod:`.context` (headers, context), :mod:`.encoding` (events and
results), :mod:`.faults` (error dictionaries and types), :mod:`.running` (loading, running).
"""

from plldb.runner.context import (
    H_CLIENT_CONTEXT,
    H_COGNITO_IDENTITY,
    H_DEADLINE_MS,
    H_FUNCTION_ARN,
    H_FUNCTION_ERROR_TYPE,
    H_INVOCATION_ID,
    H_REQUEST_ID,
    H_TENANT_ID,
    H_TRACE_ID,
    JSON_CONTENT_TYPE,
    TRACE_ENV,
    build_context,
    context_from_headers,
    header,
)
from plldb.runner.encoding import (
    error_body,
    marshal_response,
    to_json,
)
from plldb.runner.faults import (
    HandlerLoadError,
    RuntimeFault,
    error_log_text,
    make_error,
)
from plldb.runner.running import (
    Outcome,
    error_from_exception,
    load_handler,
    run_handler,
    run_invocation,
    set_trace_id,
)

__all__ = [
    "H_CLIENT_CONTEXT",
    "H_COGNITO_IDENTITY",
    "H_DEADLINE_MS",
    "H_FUNCTION_ARN",
    "H_FUNCTION_ERROR_TYPE",
    "H_INVOCATION_ID",
    "H_REQUEST_ID",
    "H_TENANT_ID",
    "H_TRACE_ID",
    "HandlerLoadError",
    "JSON_CONTENT_TYPE",
    "Outcome",
    "RuntimeFault",
    "TRACE_ENV",
    "build_context",
    "context_from_headers",
    "error_body",
    "error_from_exception",
    "error_log_text",
    "header",
    "load_handler",
    "make_error",
    "marshal_response",
    "run_handler",
    "run_invocation",
    "set_trace_id",
    "to_json",
]
