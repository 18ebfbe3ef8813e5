"""Run ``moto.server`` with DynamoDB requests made atomic, as real DynamoDB's are.

moto applies an UpdateItem attribute by attribute while other request threads read the
same item, so a concurrent GetItem can see ``Status=RESPONDED`` without the response
attribute written in the same UpdateItem: a state real DynamoDB never shows (every
single-item operation is atomic there). Serialising DynamoDB requests behind one lock
restores that guarantee; other services keep moto's threading. The lock serialises whole
requests, which costs nothing measurable at the test suite's rates.

Usage (the same arguments as ``python -m moto.server``)::

    python -m tests.harness.moto_atomic -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

from moto import server
from moto.dynamodb.responses import DynamoHandler

_DYNAMODB_LOCK = threading.Lock()


def make_atomic(action: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler's ``call_action`` so that one request runs at a time."""

    @functools.wraps(action)
    def atomic(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return action(self)

    return atomic


def main(argv: list[str] | None = None) -> None:
    DynamoHandler.call_action = make_atomic(DynamoHandler.call_action)  # type: ignore[method-assign]
    server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
