"""Meta-path importers that a function's own code installs, made to work inside its namespace.

Some packages add a finder to ``sys.meta_path`` for modules that exist only in memory: six
serves ``six.moves`` and ``six.moves.urllib.parse`` that way, and a code folder or layer that
bundles ``six.py`` is common (pip puts it there with python-dateutil; urllib3 1.x vendors
it). Such a finder knows the modules by their Lambda names (``six.moves``), while plldb
imports the function's modules under its private root (``_plldb_Fn.six.moves``), so it never
matches. When nothing in the function's folders provides a private name, the finders that
the function's own files defined are asked for the Lambda name, and the module they give is
registered under the private one. Finders of other code are never asked: a name they know
is not the function's (asking them would let one function see the process's modules).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any


class _Delegate(importlib.abc.Loader):
    """Loads the private name with the foreign finder's loader for the Lambda name."""

    def __init__(self, public: importlib.machinery.ModuleSpec) -> None:
        self.public = public

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        loader: Any = self.public.loader
        return loader.create_module(self.public) if hasattr(loader, "create_module") else None

    def exec_module(self, module: ModuleType) -> None:
        loader: Any = self.public.loader
        if hasattr(loader, "exec_module"):
            loader.exec_module(module)


def foreign_spec(source_dirs: Sequence[str], private: str, public: str,
                 path: Any) -> importlib.machinery.ModuleSpec | None:
    """A spec for ``private`` from a meta-path finder defined in ``source_dirs`` that knows
    ``public``, or None."""
    for finder in list(sys.meta_path):
        if not _defined_in(finder, source_dirs):
            continue
        try:
            found = finder.find_spec(public, path, None)
        except Exception:  # noqa: BLE001 - a broken finder of user code provides nothing
            continue
        if found is not None and found.loader is not None:
            spec = importlib.machinery.ModuleSpec(private, _Delegate(found), origin=found.origin,
                                                  is_package=found.submodule_search_locations is not None)
            if found.submodule_search_locations is not None:
                spec.submodule_search_locations = list(found.submodule_search_locations)
            return spec
    return None


def _defined_in(finder: Any, source_dirs: Sequence[str]) -> bool:
    """Whether ``finder``'s ``find_spec`` is code from one of ``source_dirs``."""
    cls = finder if isinstance(finder, type) else type(finder)
    code = getattr(getattr(cls, "find_spec", None), "__code__", None)
    filename = getattr(code, "co_filename", None)
    if not isinstance(filename, str):
        return False
    return any(filename.startswith(folder.rstrip(os.sep) + os.sep) for folder in source_dirs)
