"""Events and results as the runtime decodes and encodes them (awslambdaric's simplejson output, reproduced with the standard library).

Standard library only: bundled into the runtime layer with the rest of :mod:`plldb.runner`.
"""

from __future__ import annotations

import decimal
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from plldb.runner.context import BINARY_CONTENT_TYPE, JSON_CONTENT_TYPE
from plldb.runner.faults import MARSHAL_ERROR, UNMARSHAL_ERROR, RuntimeFault

# Runtimes whose encoder writes non-ASCII characters as is (awslambdaric's marshaller).
_UNESCAPED_UNICODE_RUNTIMES = frozenset(
    f"AWS_Lambda_python3.{minor}" for minor in (12, 13, 14, 15)
)


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
