"""Errors of setting up or destroying the helper stack, as one line naming what failed and why.

Every AWS call of bootstrap runs inside :func:`step`, which turns any AWS error into a
:class:`BootstrapError` (the CLI prints it and exits non-zero).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import botocore.exceptions
from botocore.parsers import ResponseParserError


class BootstrapError(Exception):
    """Setting up or destroying the helper stack failed; the text says what and why."""


def one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextmanager
def step(what: str) -> Iterator[None]:
    """Turn any AWS error inside ``what`` into a one-line BootstrapError."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "") or "Error"
        message = error.get("Message", "") or str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status and status >= 500 and message.lstrip().startswith("<"):
            message = f"the service returned an internal error (HTTP {status})"
        raise BootstrapError(f"{what} failed: {code}: {one_line(message)}") from exc
    except (botocore.exceptions.BotoCoreError, ResponseParserError) as exc:
        detail = str(exc)
        if "invalid XML received" in detail or "<html" in detail.lower():
            detail = "the service returned an internal error (not a valid AWS response)"
        raise BootstrapError(f"{what} failed: {one_line(detail)[:300]}") from exc
