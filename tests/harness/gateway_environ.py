"""Each helper Lambda's own credentials, although the gateway runs them all in one process.

In Lambda every function has a process of its own, whose environment holds the
credentials of its execution role (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``). The gateway emulator runs the helper handlers in threads of one
process, and the handlers (through boto3 and plldb/lambdas/common.py) read credentials from
``os.environ``. :func:`install` replaces ``os.environ`` with a mapping that shows, in the
thread running an invocation and in the threads it starts, the variables given to
:func:`overlay`; every other thread sees the process environment.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

_local = threading.local()


def _current() -> Mapping[str, str]:
    return getattr(_local, "overlay", {})


class OverlayEnviron(os._Environ):  # type: ignore[name-defined,misc]
    """``os.environ`` with the current thread's overlay on top (reads only).

    Everything not in the overlay goes to the mapping it replaced, not to that mapping's
    storage: when the executor's per-thread environment (plldb.local.binding.ThreadEnviron) is
    installed in the same test process, a thread bound to a function still sees and writes
    that function's environment.
    """

    def __init__(self, base: Any) -> None:
        super().__init__(
            base._data, base.encodekey, base.decodekey, base.encodevalue, base.decodevalue
        )
        self._base = base

    def __getitem__(self, key: str) -> str:
        overlay = _current()
        if key in overlay:
            return overlay[key]
        return self._base[key]

    def __setitem__(self, key: str, value: str) -> None:
        self._base[key] = value

    def __delitem__(self, key: str) -> None:
        del self._base[key]

    def __iter__(self) -> Iterator[str]:
        overlay = _current()
        yield from overlay
        yield from (key for key in self._base if key not in overlay)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, str]:
        return dict(self)


@contextmanager
def overlay(variables: Mapping[str, str]) -> Iterator[None]:
    """Show ``variables`` in ``os.environ`` for this thread (and threads it starts)."""
    previous = _current()
    _local.overlay = {**previous, **variables}
    try:
        yield
    finally:
        _local.overlay = previous


def install() -> None:
    """Make ``os.environ`` an :class:`OverlayEnviron`; new threads inherit the overlay."""
    if isinstance(os.environ, OverlayEnviron):
        return
    os.environ = OverlayEnviron(os.environ)  # noqa: B003 (replaced on purpose, not cleared)
    start = threading.Thread.start

    @functools.wraps(start)
    def start_inheriting(self: threading.Thread) -> None:
        inherited, run = _current(), self.run

        def run_with_overlay() -> None:
            _local.overlay = inherited
            run()

        self.run = run_with_overlay  # type: ignore[method-assign]
        start(self)

    threading.Thread.start = start_inheriting  # type: ignore[method-assign]
