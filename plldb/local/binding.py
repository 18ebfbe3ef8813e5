"""Which function (and which invocation) the current thread works for.

plldb runs every function's handlers in its own process, on worker threads. A thread is
*bound* (:func:`bound`) while it runs a function's code: it then sees that function's
environment through ``os.environ`` (:class:`ThreadEnviron`), imports through the function's
module namespace (:mod:`plldb.local.isolation`) and writes to its invocation's output
(:mod:`plldb.local.lambda_logging`). Threads started by a bound thread inherit its binding.
Unbound threads (plldb's own) see the real process state. :func:`install` sets this up once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# binding sits below isolation (isolation reads which namespace a thread is bound to), so
# the namespace is an opaque object here: naming its type would import isolation back.
# .env: dict | None; .active: list[FunctionNamespace] (the bound one first, then the ones
# importing); .output: the invocation's output (lambda_logging.InvocationOutput) or None
state = threading.local()
_install_lock = threading.Lock()
_installed = False
_original_thread_start = threading.Thread.start


class ThreadEnviron(os._Environ):  # type: ignore[misc,name-defined]
    """``os.environ`` that shows the current thread's bound environment, if any.

    Unbound threads (plldb's own) see and change the real process environment exactly as
    before (same storage, ``putenv`` included). A bound thread sees only its dict: writes
    stay in it and never reach the process environment.
    """

    def __init__(self, real: os._Environ) -> None:  # type: ignore[name-defined]
        super().__init__(real._data, real.encodekey, real.decodekey, real.encodevalue, real.decodevalue)

    def __getitem__(self, key: str) -> str:
        env = bound_env()
        return super().__getitem__(key) if env is None else env[key]

    def __setitem__(self, key: str, value: str) -> None:
        env = bound_env()
        if env is None:
            super().__setitem__(key, value)
            return
        self.encodekey(key), self.encodevalue(value)  # the same type checks as os.environ
        env[key] = value

    def __delitem__(self, key: str) -> None:
        env = bound_env()
        if env is None:
            super().__delitem__(key)
        else:
            del env[key]

    def __iter__(self) -> Iterator[str]:
        env = bound_env()
        return super().__iter__() if env is None else iter(list(env))

    def __len__(self) -> int:
        env = bound_env()
        return super().__len__() if env is None else len(env)

    def __repr__(self) -> str:
        return f"environ({dict(self)!r})"


def bound_env() -> dict[str, str] | None:
    """The environment of the function bound to this thread, or None."""
    return getattr(state, "env", None)


def process_environment() -> dict[str, str]:
    """The real process environment, whatever the current thread is bound to."""
    environ = os.environ
    return {environ.decodekey(k): environ.decodevalue(v) for k, v in list(environ._data.items())}


def bound_output() -> Any:
    """The output object of the invocation bound to this thread (see :func:`bound`), or None."""
    return getattr(state, "output", None)


@contextmanager
def bound(env: dict[str, str] | None, namespace: Any, output: Any = None) -> Iterator[None]:
    """Run the block as the function: its environment, its module namespace
    (an :class:`~plldb.local.isolation.FunctionNamespace`, or None) for imports, and
    ``output`` (the invocation's logging and output state, :mod:`plldb.local.lambda_logging`)."""
    saved = (getattr(state, "env", None), getattr(state, "active", []), bound_output())
    state.env, state.active, state.output = env, [namespace] if namespace else [], output
    try:
        yield
    finally:
        state.env, state.active, state.output = saved


def _start_inheriting(self: threading.Thread) -> None:
    """``Thread.start`` that hands the starting thread's binding to the new thread, so a
    handler's own threads (thread pools, timers) see the function's environment and write
    to its invocation's output."""
    env, active, output = bound_env(), list(getattr(state, "active", [])), bound_output()
    if env is not None or active or output is not None:
        run = self.run

        def run_bound() -> None:
            state.env, state.active, state.output = env, active, output
            run()

        self.run = run_bound  # type: ignore[method-assign]
    _original_thread_start(self)


def install() -> None:
    """Make ``os.environ`` and ``Thread.start`` follow bindings (once; idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        if not isinstance(os.environ, ThreadEnviron):
            os.environ = ThreadEnviron(os.environ)  # noqa: B003 (same storage, kept)
        threading.Thread.start = _start_inheriting  # type: ignore[method-assign]
        _installed = True
