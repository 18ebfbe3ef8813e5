"""Give each function its own modules inside the one ``plldb`` process.

Handlers run in this process so that a debugger attached to it sees them; several functions
(and several invocations) run at once on worker threads. Lambda gives each function its own
process, so modules must be separated here by hand (the environment and output are per
thread, :mod:`plldb.local.binding`):

Each function's source folders (code folder, local layers) are imported under a private
root package, ``_plldb_<LogicalId>``: its ``app.py`` is the module
``_plldb_HelloFunction.app`` in ``sys.modules``, created with Lambda's ``__name__``
(``app``). An ``import utils`` executed by a module of that root is redirected to
``_plldb_HelloFunction.utils`` when the function's folders provide ``utils`` (decided by
the importing module's ``__package__``, so it holds on any thread); code that is not the
function's finds its modules by name on a thread bound to it, as the task root is on
Lambda's ``sys.path``. Anything else (standard library, plldb's own dependencies, the ``sam
build`` packages of the function) is imported under its real name, once per process; the
function's build folders are searched last, for the function whose code is importing.

:func:`install` sets this up once per process (idempotent). See
docs/requirements/executor-and-discovery.md and lambda-identical-runtime.md for what is
not isolated.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import importlib.util
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from plldb.local import binding, meta_importers, public_names

ROOT_PREFIX = "_plldb_"

_namespaces: dict[str, FunctionNamespace] = {}  # root package name -> namespace
_registry_lock = threading.Lock()
_installed = False

_original_import = builtins.__import__
_original_import_module = importlib.import_module
_original_find_spec = importlib.util.find_spec


# --- Modules ------------------------------------------------------------------------------


class _PublicNameLoader:
    """Creates a function's modules under the name Lambda gives them: ``__name__`` is ``app``,
    not ``_plldb_Fn.app`` (so are logger names, classes' ``__module__`` and import error
    texts). ``__spec__`` and ``__package__`` keep the private name, for imports. Done in
    ``create_module``, which is never on the stack when module code fails."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        namespace = _namespaces.get(spec.name.partition(".")[0])
        if namespace is None:
            return None
        public = namespace.public_name(spec.name)
        public_names.list_name(public, _public_module)
        return ModuleType(public)


class _FreshSourceLoader(_PublicNameLoader, importlib.machinery.SourceFileLoader):
    """Compiles from source every time and records the file's stamp.

    No ``__pycache__`` is read or written in the user's folders, so an edit made within the
    same second as the previous load (a .pyc only stores whole seconds) is never hidden.
    """

    def get_code(self, fullname: str) -> Any:
        namespace = _namespaces.get(self.name.partition(".")[0])  # fullname is the Lambda name
        if namespace is not None:
            namespace.record(self.path)
        return self.source_to_code(self.get_data(self.path), self.path)


class _PublicSourcelessLoader(_PublicNameLoader, importlib.machinery.SourcelessFileLoader):
    """A ``.pyc``-only module of a function, under its Lambda name like the others."""


_LOADERS = (
    (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
    (_FreshSourceLoader, importlib.machinery.SOURCE_SUFFIXES),
    (_PublicSourcelessLoader, importlib.machinery.BYTECODE_SUFFIXES),
)


def _stamp(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1)
    return (stat.st_mtime_ns, stat.st_size)


class FunctionNamespace:
    """One function's private module tree: root package ``_plldb_<name>``."""

    def __init__(self, name: str, source_dirs: Sequence[Path], package_dirs: Sequence[Path] = ()) -> None:
        self.source_dirs = [str(p) for p in source_dirs]
        self.package_dirs = [str(p) for p in package_dirs]
        self._provides: dict[str, bool] = {}
        self._finders: dict[str, importlib.machinery.FileFinder] = {}
        self._stamps: dict[str, tuple[int, int]] = {}
        with _registry_lock:
            base = ROOT_PREFIX + re.sub(r"\W", "_", name)
            root, counter = base, 1
            while root in _namespaces:
                counter += 1
                root = f"{base}_{counter}"
            self.root = root
            _namespaces[root] = self

    # -- used by the executor

    def import_module(self, name: str) -> ModuleType:
        """Import ``name`` (as the handler names it, e.g. ``app``) from this function."""
        self._ensure_root()
        top = name.partition(".")[0]
        if not top or not self.provides(top):  # as in Lambda: "" is a ValueError, json the stdlib's
            self.refuse_other_functions(top)
            with self.active():
                return _original_import_module(name)
        try:
            return _original_import_module(f"{self.root}.{name}")
        except ImportError as exc:
            raise self.public_error(exc) from exc.__cause__

    def refuse_other_functions(self, top: str) -> None:
        """``top`` is not in this function's folders: if only another function's folders hold
        it (its Lambda name is listed for lookups by name), this function cannot import it,
        as in Lambda, where the other function's layer is not in its process."""
        if isinstance(sys.modules.get(top), public_names.PublicModule):
            raise ModuleNotFoundError(f"No module named '{top}'", name=top)

    def public_name(self, name: str) -> str:
        """``_plldb_Fn.pkg.mod`` -> ``pkg.mod`` (other names unchanged)."""
        return name[len(self.root) + 1:] if name.startswith(self.root + ".") else name

    def public_error(self, exc: ImportError) -> ImportError:
        """``exc`` as Lambda would word it: without the private root package in its text."""
        prefix = f"{self.root}."
        if prefix not in str(exc):
            return exc
        public = type(exc)(str(exc).replace(prefix, ""), name=self.public_name(exc.name or ""), path=exc.path)
        public.__context__ = exc.__context__
        public.__suppress_context__ = exc.__suppress_context__
        return public.with_traceback(exc.__traceback__)

    def changed(self) -> bool:
        """True when a source file loaded for this function was modified or removed."""
        return any(_stamp(path) != stamp for path, stamp in list(self._stamps.items()))

    def reset(self) -> None:
        """Forget every module of this function, so the next import runs module code again."""
        for name in [n for n in list(sys.modules) if n == self.root or n.startswith(self.root + ".")]:
            sys.modules.pop(name, None)
        self._provides.clear()
        self._finders.clear()
        self._stamps.clear()

    def module_name(self, name: str) -> str:
        """The name under which this function's module ``name`` lives in ``sys.modules``."""
        return f"{self.root}.{name}"

    # -- used by the import machinery

    def record(self, path: str) -> None:
        self._stamps[path] = _stamp(path)

    def provides(self, top: str) -> bool:
        """Whether this function's source folders hold the top-level module ``top``."""
        known = self._provides.get(top)
        if known is None:
            spec = self.find_spec(f"{self.root}.{top}", self.source_dirs)
            # A folder without __init__.py is only a namespace portion: on Lambda's sys.path a
            # regular module or package of that name (html/ and the stdlib's html) wins.
            known = spec is not None and (spec.loader is not None or not _regular_elsewhere(top))
            self._provides[top] = known
        return known

    def find_spec(self, fullname: str, path: Sequence[str] | None) -> importlib.machinery.ModuleSpec | None:
        portions: list[str] = []
        for entry in path if path is not None else self.source_dirs:
            finder = self._finders.get(entry)
            if finder is None:
                finder = self._finders[entry] = importlib.machinery.FileFinder(entry, *_LOADERS)
            spec = finder.find_spec(fullname)
            if spec is None:
                continue
            if spec.loader is not None:
                return spec
            portions += spec.submodule_search_locations or []
        if not portions:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
        spec.submodule_search_locations = portions
        return spec

    def import_from(self, name: str, globals_: Any, locals_: Any, fromlist: Any, level: int = 0) -> ModuleType:
        """``import name`` / ``from name import ...`` executed by one of this function's modules."""
        top = name.partition(".")[0]
        if level == 0 and (top == self.root or not self.provides(top)):
            self.refuse_other_functions(top)
            with self.active():
                return _original_import(name, globals_, locals_, fromlist, 0)
        if level == 0:
            private = f"{self.root}.{name}"
        elif globals_.get("__package__") == self.root:  # a top-level module: Lambda's has no package
            raise ImportError("attempted relative import with no known parent package")
        else:
            private = importlib.util.resolve_name("." * level + name, globals_.get("__package__"))
        try:
            module = _import_leaf(private)
            if not fromlist:
                return sys.modules[private if level else f"{self.root}.{top}"]
            if hasattr(module, "__path__"):
                _import_submodules(module, private, fromlist)
            return module
        except ImportError as exc:
            raise self.public_error(exc) from exc.__cause__

    @contextmanager
    def active(self) -> Iterator[None]:
        """Let the build-folder finder search this function's packages during the block."""
        stack = getattr(binding.state, "active", None)
        if stack is None:
            stack = binding.state.active = []
        stack.append(self)
        try:
            yield
        finally:
            stack.pop()

    def _ensure_root(self) -> None:
        if self.root not in sys.modules:
            spec = importlib.machinery.ModuleSpec(self.root, None, is_package=True)
            spec.submodule_search_locations = list(self.source_dirs)
            sys.modules[self.root] = importlib.util.module_from_spec(spec)


def _namespace_of(globals_: Any) -> FunctionNamespace | None:
    """The function whose module runs with these globals (its ``__package__`` is private)."""
    if not isinstance(globals_, dict):
        return None
    name = globals_.get("__package__")
    if not isinstance(name, str) or not name.startswith(ROOT_PREFIX):
        return None
    return _namespaces.get(name.partition(".")[0])


def _regular_elsewhere(top: str) -> bool:
    """Whether ``top`` is a module or regular package outside the functions' folders."""
    try:
        spec = _original_find_spec(top)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.loader is not None


def _bound_namespace() -> FunctionNamespace | None:
    active = getattr(binding.state, "active", None)
    return active[0] if active else None


def _public_module(name: str) -> ModuleType | None:
    """The module a Lambda name stands for: that of the function bound to this thread; on a
    thread bound to none, that of the only function that has loaded one."""
    namespace = _bound_namespace()
    if namespace is not None:  # never another function's module, for a thread bound to one
        return sys.modules.get(namespace.module_name(name))
    found = [m for ns in list(_namespaces.values()) if (m := sys.modules.get(ns.module_name(name))) is not None]
    return found[0] if len(found) == 1 else None


def _library_target(name: str) -> FunctionNamespace | None:
    """The function bound to this thread when code that is not the function's (the standard
    library, a dependency) imports one of its modules by name: in Lambda the code folder is
    on ``sys.path``, so ``logging.config``, ``importlib.resources`` & co find it. A module
    already imported keeps the name (the runtime's own modules load before the task root's)."""
    namespace = _bound_namespace()
    top = name.partition(".")[0]
    if namespace is None or not top or top in sys.modules or not namespace.provides(top):
        return None
    return namespace


def _import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> ModuleType:  # noqa: A002
    namespace = _namespace_of(globals) or (_library_target(name) if level == 0 else None)
    if namespace is not None:
        return namespace.import_from(name, globals, locals, fromlist, level)
    return _original_import(name, globals, locals, fromlist, level)


def _import_leaf(name: str) -> ModuleType:
    """Import the module ``name`` itself through the built-in import (which keeps importlib's
    frames out of tracebacks, as in Lambda). The fromlist only makes it return the leaf:
    every module has ``__name__``."""
    return _original_import(name, None, None, ("__name__",), 0)


def _import_submodules(package: ModuleType, private: str, fromlist: Any) -> None:
    """``from package import a, b``: import the submodules among the names, by the package's
    private name (importlib would use ``__name__``, which is the Lambda name)."""
    names = [n for n in fromlist if n != "*"]
    if "*" in fromlist:
        names += [n for n in getattr(package, "__all__", ()) if isinstance(n, str)]
    for name in names:
        if hasattr(package, name):
            continue
        try:
            _import_leaf(f"{private}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{private}.{name}":
                raise  # the submodule exists but something it imports does not


def _caller_namespace(name: str, frame: Any) -> FunctionNamespace | None:
    """The function a by-name lookup of ``name`` made from ``frame`` is about: the function
    whose module the caller is, or the bound function when the caller is a library."""
    return _namespace_of(frame.f_globals) or _library_target(name)


def _find_spec(name: str, package: str | None = None) -> importlib.machinery.ModuleSpec | None:
    """``importlib.util.find_spec`` that finds a function's modules for its thread."""
    namespace = None if name.startswith(".") else _caller_namespace(name, sys._getframe(1))
    if namespace is None or not namespace.provides(name.partition(".")[0]):
        return _original_find_spec(name, package)
    namespace._ensure_root()
    return _original_find_spec(namespace.module_name(name))


def _import_module(name: str, package: str | None = None) -> ModuleType:
    """``importlib.import_module`` that resolves a function's modules for its own code."""
    namespace = None if name.startswith(".") else _caller_namespace(name, sys._getframe(1))
    if namespace is None:
        return _original_import_module(name, package)
    if namespace.provides(name.partition(".")[0]):
        return _original_import_module(f"{namespace.root}.{name}")
    with namespace.active():
        return _original_import_module(name, package)


class _NamespaceFinder:
    """First on ``sys.meta_path``: finds ``_plldb_<fn>.*`` modules in the function's folders."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        root = fullname.partition(".")[0]
        namespace = _namespaces.get(root) if root != fullname else None
        if namespace is None:
            return None
        spec = namespace.find_spec(fullname, path)
        if spec is None:  # six.moves & co: a meta-path importer the function's own code installed
            spec = meta_importers.foreign_spec(namespace.source_dirs, fullname, namespace.public_name(fullname), path)
        return spec

    @staticmethod
    def invalidate_caches() -> None:
        for namespace in list(_namespaces.values()):
            namespace._finders.clear()
            namespace._provides.clear()


class _PackageFinder:
    """Last on ``sys.meta_path``: top-level packages from the build folders of the function
    running (or importing) on this thread, when nothing else provides them."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if path is not None:
            return None
        for namespace in reversed(getattr(binding.state, "active", [])):
            if namespace.package_dirs:
                spec = importlib.machinery.PathFinder.find_spec(fullname, namespace.package_dirs)
                if spec is not None:
                    return spec
        return None


def install() -> None:
    """Install the thread bindings and the import hooks in this process (once; idempotent)."""
    global _installed
    binding.install()
    with _registry_lock:
        if _installed:
            return
        builtins.__import__ = _import
        importlib.import_module = _import_module
        importlib.util.find_spec = _find_spec
        # dictConfig resolves "module.Class" with the __import__ it saw when it was imported
        import logging.config  # here: costly, and only needed once handlers run

        logging.config.BaseConfigurator.importer = staticmethod(_import)  # type: ignore[assignment]
        sys.meta_path.insert(0, _NamespaceFinder)
        sys.meta_path.append(_PackageFinder)
        _installed = True
