"""Lambda's module names in ``sys.modules``, for code that looks a module up by name.

A function's ``app.py`` lives in ``sys.modules`` as ``_plldb_<LogicalId>.app`` (so two
functions never collide) but its ``__name__``, and so its classes' ``__module__``, is
``app``, as in Lambda. The standard library looks classes' modules up by that name:
``dataclasses`` (with ``from __future__ import annotations``), ``typing.get_type_hints``,
``pickle``. So ``sys.modules["app"]`` holds a :class:`PublicModule` that stands for the
``app`` of the function the current thread works for (see :mod:`plldb.local.binding`), or of the
only function that has one, and is empty otherwise.

A name is listed only when nothing on ``sys.path`` provides it (a function's ``utils.py``
never hides an installed ``utils`` from other code), and the entries are removed when the
executor shuts down.
"""

from __future__ import annotations

import importlib.machinery
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

Resolve = Callable[[str], "ModuleType | None"]

_listed: set[str] = set()
_lock = threading.Lock()


class PublicModule(ModuleType):
    """Every attribute (``__dict__`` included) is the resolved module's, when there is one."""

    def __init__(self, name: str, resolve: Resolve) -> None:
        super().__init__(name)
        ModuleType.__setattr__(self, "_plldb_resolve", resolve)

    def __getattribute__(self, name: str) -> Any:
        resolve = ModuleType.__getattribute__(self, "_plldb_resolve")
        target = resolve(ModuleType.__getattribute__(self, "__name__"))
        if target is None or name == "_plldb_resolve":
            return ModuleType.__getattribute__(self, name)
        return getattr(target, name)


def list_name(name: str, resolve: Resolve) -> None:
    """List the Lambda name ``name`` (``app``, ``pkg.mod``) when nothing else provides it."""
    top = name.partition(".")[0]
    with _lock:
        if name in sys.modules:
            return
        if top not in _listed and (top in sys.builtin_module_names
                                   or importlib.machinery.PathFinder.find_spec(top) is not None):
            return
        sys.modules[name] = PublicModule(name, resolve)
        _listed.add(name)


def unlist_all() -> None:
    """Remove every listed name (the executor is done)."""
    with _lock:
        for name in _listed:
            if isinstance(sys.modules.get(name), PublicModule):
                del sys.modules[name]
        _listed.clear()
