"""Handlers' logging and output as the Lambda Python runtime (awslambdaric) produces them.

In Lambda each function has its own process: the runtime puts one handler on the root
logger (text ``[LEVEL]\\t<time>\\t<request id>\\tmessage`` or, with
``AWS_LAMBDA_LOG_FORMAT=JSON``, one JSON object per record), sets the root level from
``AWS_LAMBDA_LOG_LEVEL``, adds ``aws_request_id``/``tenant_id`` to every record that handler
sees, logs handler and init errors itself, and sends stdout/stderr to the function's log.

Here every function shares the plldb process, so that state is kept per function and chosen
by the thread (see :func:`plldb.local.binding.bound`):

* the root logger's ``handlers`` and ``level`` are those of the function bound to the thread
  (:class:`FunctionLogging`), and plldb's own on every other thread, so neither side ever
  sees or changes the other's handlers and formats;
* ``sys.stdout``/``sys.stderr`` written on a bound thread go to that invocation's
  :class:`InvocationOutput`, which hands complete lines to an ``output(function, line)``
  callable (plldb's console marks them with the function);
* ``Logger.isEnabledFor`` is not cached (the root level differs per thread) and
  ``logging.Formatter.converter`` is ``time.gmtime``, as the runtime sets it.

:func:`install` sets this up once per process (idempotent).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

from plldb import runner
from plldb.local import binding

Output = Callable[[str, str], None]

TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
TEXT_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
JSON_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The runtime's own warning before an init error (its exact text, as users see it in CloudWatch).
UNHANDLED_EXCEPTION_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function change, "
    "or can be applied automatically. To determine if the runtime has been updated, check the "
    "runtime version in the INIT_START log entry. If this error correlates with a change in the "
    "runtime version, you may be able to mitigate this error by temporarily rolling back to the "
    "previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)
# LogRecord attributes that never become fields of a JSON record.
_RESERVED = frozenset({
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module", "exc_info",
    "exc_text", "stack_info", "lineno", "funcName", "created", "msecs", "relativeCreated",
    "thread", "threadName", "processName", "process", "aws_request_id", "tenant_id", "_frame_type",
})

_local = threading.local()  # .passthrough: True while plldb itself prints from a bound thread
_install_lock = threading.Lock()
_installed = False


def is_json(environ: Mapping[str, str]) -> bool:
    """Whether the function logs JSON (``AWS_LAMBDA_LOG_FORMAT``, case-insensitive)."""
    return (environ.get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON"


def root_level(environ: Mapping[str, str]) -> int:
    """The root logger's level in the runtime: ``AWS_LAMBDA_LOG_LEVEL`` when it names a level
    (``TRACE`` is ``DEBUG``), else Python's default, WARNING."""
    name = (environ.get("AWS_LAMBDA_LOG_LEVEL") or "").upper()
    name = "DEBUG" if name == "TRACE" else name
    level = logging.getLevelName(name) if name else None
    return level if isinstance(level, int) else logging.WARNING


# --- Formatting -----------------------------------------------------------------------------


def _normalised_level(record: logging.LogRecord) -> int:
    return min(50, max(0, record.levelno)) // 10 * 10


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the runtime's fields and order."""

    def __init__(self) -> None:
        super().__init__(datefmt=JSON_DATE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.levelno = _normalised_level(record)
        record.levelname = logging.getLevelName(record.levelno)
        exc_info = record.exc_info
        fields: dict[str, Any] = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "message": record.msg if isinstance(record.msg, dict) and not record.args else record.getMessage(),
            "logger": record.name,
            "stackTrace": traceback.format_tb(exc_info[2]) if exc_info else None,
            "errorType": exc_info[0].__name__ if exc_info and exc_info[0] else None,
            "errorMessage": str(exc_info[1]) if exc_info else None,
            "requestId": getattr(record, "aws_request_id", None),
            "location": f"{record.pathname}:{record.funcName}:{record.lineno}" if exc_info else None,
        }
        if getattr(record, "tenant_id", None) is not None:
            fields["tenantId"] = record.tenant_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in fields:
                fields[key] = value
        text = json.dumps({k: v for k, v in fields.items() if v is not None}, ensure_ascii=False, default=str)
        return text + "\n"


class RequestFilter(logging.Filter):
    """Gives each record the invocation's ``aws_request_id`` (empty during init) and ``tenant_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        output = binding.bound_output()
        record.aws_request_id = output.request_id if output is not None else ""
        record.tenant_id = output.tenant_id if output is not None else None
        return True


class LogSink:
    """What the runtime's handler writes to: ``sys.stdout``, as the runtime's standard sink
    (on a bound thread that is the invocation's output; ``redirect_stdout`` in a handler
    captures log records as it does in Lambda)."""

    def log(self, message: str, frame_type: Any = None) -> None:
        sys.stdout.write(message)


class LambdaLogHandler(logging.Handler):
    """The handler the runtime puts on the root logger (``log_sink`` as in the runtime, which
    ``context.log`` looks for)."""

    def __init__(self, json_format: bool) -> None:
        super().__init__()
        self.log_sink = LogSink()
        formatter = JsonFormatter() if json_format else logging.Formatter(TEXT_FORMAT, TEXT_DATE_FORMAT)
        self.setFormatter(formatter)
        self.addFilter(RequestFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.log_sink.log(self.format(record))


class FunctionLogging:
    """One function's root logger state, as its own runtime process would have it (made anew
    at each cold start, from the function's environment).

    ``previous`` is the state before a reload: filters that libraries put on the runtime's
    handler are kept, because those libraries are not imported again (Powertools' Logger
    filters its own records out of the root handler once, when its logger is first set up).
    """

    def __init__(self, environ: Mapping[str, str], previous: FunctionLogging | None = None) -> None:
        self.json = is_json(environ)
        runtime_handler = LambdaLogHandler(self.json)
        for earlier in previous.handlers if previous is not None else []:
            if isinstance(earlier, LambdaLogHandler):
                for extra in earlier.filters[1:]:  # the first is the runtime's RequestFilter
                    runtime_handler.addFilter(extra)
        self.handlers: list[logging.Handler] = [runtime_handler]
        self.level = root_level(environ)
        self.environ = dict(environ)

    def error_text(self, error: Mapping[str, Any]) -> str:
        """How the runtime logs a handler or init error (one record: lines joined by CR)."""
        if not self.json:
            return runner.error_log_text(error)
        stamp = time.strftime(JSON_DATE_FORMAT, time.gmtime(time.time()))
        return runner.to_json({"timestamp": stamp, "level": "ERROR", **error}, self.environ) + "\n"


# --- Output -----------------------------------------------------------------------------------


class InvocationOutput:
    """Everything one invocation writes (print, logging, warnings, the runtime's error lines),
    handed on line by line as ``output(function, line)``. Threads the handler starts inherit it.
    """

    def __init__(self, function: str, request_id: str, tenant_id: str | None, output: Output) -> None:
        self.function = function
        self.request_id = request_id
        self.tenant_id = tenant_id
        self.logging: FunctionLogging | None = None
        self._output = output
        self._partial: dict[str, str] = {}
        self._lock = threading.Lock()

    def write(self, stream: str, text: str) -> None:
        with self._lock:
            pending = self._partial.get(stream, "") + text
            *lines, self._partial[stream] = pending.split("\n")
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        """Hand on what is left of unfinished lines (the invocation ended)."""
        with self._lock:
            rest = [text for text in self._partial.values() if text]
            self._partial.clear()
        for line in rest:
            self._emit(line)

    @contextmanager
    def initialising(self) -> Iterator[None]:
        """During the block (the handler's module loading) records carry no request or tenant
        id: in the runtime, init runs before the first invocation."""
        saved = self.request_id, self.tenant_id
        self.request_id, self.tenant_id = "", None
        try:
            yield
        finally:
            self.request_id, self.tenant_id = saved

    def log_error(self, error: Mapping[str, Any], init: bool) -> None:
        """Log a handler or init error as the runtime does (init: after its warning)."""
        if self.logging is None:
            return
        if init:
            logging.getLogger().warning(UNHANDLED_EXCEPTION_WARNING)
        self.write("stdout", self.logging.error_text(error))

    def _emit(self, line: str) -> None:
        _local.passthrough = True
        try:
            self._output(self.function, line)
        except Exception:
            logging.getLogger(__name__).exception("showing the output of %s failed", self.function)
        finally:
            _local.passthrough = False


class _ThreadStream:
    """``sys.stdout``/``sys.stderr`` that sends a bound thread's writes to its invocation."""

    def __init__(self, name: str, real: TextIO) -> None:
        self._name = name
        self._real = real

    def write(self, text: str) -> int:
        output = binding.bound_output()
        if output is None or getattr(_local, "passthrough", False):
            return self._real.write(text)
        output.write(self._name, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _FunctionRootLogger(logging.RootLogger):
    """The root logger whose ``handlers`` and ``level`` belong to the bound function."""

    @property  # type: ignore[override]
    def handlers(self) -> list[logging.Handler]:
        function = _bound_logging()
        return self.__dict__["handlers"] if function is None else function.handlers

    @handlers.setter
    def handlers(self, value: list[logging.Handler]) -> None:
        function = _bound_logging()
        if function is None:
            self.__dict__["handlers"] = value
        else:
            function.handlers = value

    @property  # type: ignore[override]
    def level(self) -> int:
        function = _bound_logging()
        return self.__dict__["level"] if function is None else function.level

    @level.setter
    def level(self, value: int) -> None:
        function = _bound_logging()
        if function is None:
            self.__dict__["level"] = value
        else:
            function.level = value


def _bound_logging() -> FunctionLogging | None:
    output = binding.bound_output()
    return output.logging if output is not None else None


def _is_enabled_for(self: logging.Logger, level: int) -> bool:
    """``Logger.isEnabledFor`` without its per-logger cache: the root level depends on the thread."""
    if self.disabled or self.manager.disable >= level:
        return False
    return level >= self.getEffectiveLevel()


def ensure_streams() -> None:
    """Route ``sys.stdout``/``sys.stderr`` through the per-thread streams (again, if something
    replaced them since)."""
    for name in ("stdout", "stderr"):
        current = getattr(sys, name)
        if not isinstance(current, _ThreadStream):
            setattr(sys, name, _ThreadStream(name, current))


def install() -> None:
    """Make the root logger, ``isEnabledFor`` and the standard streams per function (once)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        logging.root.__class__ = _FunctionRootLogger
        logging.Logger.isEnabledFor = _is_enabled_for  # type: ignore[method-assign]
        logging.Formatter.converter = time.gmtime  # type: ignore[assignment]
        _installed = True
    ensure_streams()
