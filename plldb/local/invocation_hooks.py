"""Code that follows every invocation the executor runs (capture records the handler's AWS
calls this way: :mod:`plldb.capture.aws_calls`).

The executor enters :func:`running` around each invocation's run and :func:`loading` around
a load of the function's modules, both on the worker thread bound to the invocation
(:mod:`plldb.local.binding`), so a hook can tell which invocation the threads its handler
starts work for. Hooks are registered for the process (:func:`add_hook`): the local layer
does not know who follows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, Protocol

from plldb.project.model import LocalFunction


class InvocationHook(Protocol):
    """Code that follows every invocation from its worker thread (capture records the
    handler's AWS calls this way, :mod:`plldb.capture.aws_calls`): both are entered on the
    thread bound to the invocation, so threads the handler starts are attributed too."""

    def running(self, function: LocalFunction, invocation: dict[str, Any]) -> AbstractContextManager[Any]:
        """Around the whole run: loading the handler if needed, and calling it."""

    def loading(self, function: LocalFunction) -> AbstractContextManager[Any]:
        """Around the import of the function's modules (a cold start), inside ``running``."""


_hooks: list[InvocationHook] = []


def add_hook(hook: InvocationHook) -> None:
    """Follow every invocation started from now on (until :func:`remove_hook`)."""
    _hooks.append(hook)


def remove_hook(hook: InvocationHook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


@contextmanager
def _entered(enter: Callable[[InvocationHook], AbstractContextManager[Any]]) -> Iterator[None]:
    with ExitStack() as stack:
        for hook in list(_hooks):
            stack.enter_context(enter(hook))
        yield


def running(function: LocalFunction, invocation: dict[str, Any]) -> AbstractContextManager[None]:
    """Every hook's ``running``, entered in the order they were added."""
    return _entered(lambda hook: hook.running(function, invocation))


def loading(function: LocalFunction) -> AbstractContextManager[None]:
    """Every hook's ``loading``."""
    return _entered(lambda hook: hook.loading(function))
