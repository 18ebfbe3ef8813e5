"""The runtime's error dictionaries and ``Runtime.*`` error types, and the log line it writes for an error.

Standard library only: bundled into the runtime layer with the rest of :mod:`plldb.runner`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# --- Error types (awslambdaric FaultException) --------------------------------------------
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"


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
