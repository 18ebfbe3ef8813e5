"""Deterministic zips of the helper Lambdas and the runtime shim layer.

Same sources must give the same bytes: bootstrap names uploads by content hash, so an
unchanged plldb uploads nothing and CloudFormation sees no change. Every entry therefore
has a fixed timestamp (1980-01-01), fixed permissions and a sorted position, and only
``.py`` sources (plus the wrapper) are taken, never ``__pycache__``.

``python -m plldb.cloud.packaging <dir>`` writes every zip into ``<dir>`` (``make build``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import sys
import zipfile
from pathlib import Path

from plldb.naming import LAYER_DIR

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # plldb/
LAMBDA_NAMES = ("authorizer", "connect", "disconnect", "default", "manager")
LAYER_NAME = "layer"
LAYER_PREFIX = f"{LAYER_DIR}/"  # the layer unpacks to /opt/plldb-shim/
WRAPPER = "wrapper"
# The modules every side shares (names, limits, messages, a shared stage's routes), bundled
# into each zip: the authorizer checks and writes routes, the shim matches them.
SHARED_MODULES = ("naming.py", "limits.py", "protocol.py", "routing.py", "route_table.py")

_EPOCH = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o644
_EXEC_MODE = 0o755


def _package_file(relative: str) -> Path:
    return PACKAGE_DIR / relative


def _existing(relatives: list[str]) -> list[str]:
    return [r for r in relatives if _package_file(r).is_file()]


def _sources(subpackage: str) -> list[str]:
    """``plldb/<subpackage>/**/*.py`` relative to the package, sorted (``__init__`` included)."""
    folder = PACKAGE_DIR / subpackage
    return sorted(p.relative_to(PACKAGE_DIR).as_posix() for p in folder.rglob("*.py") if p.is_file())


def lambda_files() -> list[tuple[str, Path]]:
    """(name in zip, source) for a helper Lambda zip: the plldb package parts it imports."""
    relatives = _existing(["__init__.py", *SHARED_MODULES]) + _sources("lambdas")
    return [(f"plldb/{r}", _package_file(r)) for r in relatives]


def layer_files() -> list[tuple[str, Path]]:
    """(name in zip, source) for the layer: wrapper + the shim's part of the plldb package."""
    files = []
    if _package_file(f"layer/{WRAPPER}").is_file():
        files.append((f"{LAYER_PREFIX}{WRAPPER}", _package_file(f"layer/{WRAPPER}")))
    relatives = _existing(["__init__.py", *SHARED_MODULES]) + _sources("runner") + _sources("layer")
    files += [(f"{LAYER_PREFIX}plldb/{r}", _package_file(r)) for r in relatives]
    return files


def deterministic_zip(
    files: list[tuple[str, Path]], executable: frozenset[str] = frozenset()
) -> bytes:
    """A zip of ``files`` whose bytes depend only on names, contents and ``executable``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, source in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the permission bits below are honoured
            mode = _EXEC_MODE if name in executable else _FILE_MODE
            info.external_attr = (0o100000 | mode) << 16  # regular file + mode
            archive.writestr(info, source.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def lambda_zip(name: str) -> bytes:
    """The code zip of helper Lambda ``name`` (handler ``plldb.lambdas.<name>.handler``).

    Every helper gets the same content (all of ``plldb/lambdas``) so that they can share
    modules; the name only selects the handler, and is checked here.
    """
    if name not in LAMBDA_NAMES:
        raise ValueError(f"unknown helper Lambda {name!r}; expected one of {LAMBDA_NAMES}")
    return deterministic_zip(lambda_files())


def layer_zip() -> bytes:
    """The runtime shim layer: everything under ``plldb-shim/``, the wrapper executable."""
    return deterministic_zip(layer_files(), executable=frozenset({f"{LAYER_PREFIX}{WRAPPER}"}))


def all_zips() -> dict[str, bytes]:
    """Every artifact bootstrap uploads: the five helper Lambdas and the layer."""
    zips = {name: lambda_zip(name) for name in LAMBDA_NAMES}
    zips[LAYER_NAME] = layer_zip()
    return zips


def content_name(name: str, data: bytes) -> str:
    """``<name>-<sha256 prefix>.zip``: a new name exactly when the content changes."""
    return f"{name}-{hashlib.sha256(data).hexdigest()[:16]}.zip"


def build_all(out_dir: Path) -> dict[str, Path]:
    """Write every zip into ``out_dir`` under its content-addressed name; name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, data in all_zips().items():
        path = out_dir / content_name(name, data)
        path.write_bytes(data)
        log.info("wrote %s (%d bytes)", path, len(data))
        paths[name] = path
    return paths


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m plldb.cloud.packaging <output directory>", file=sys.stderr)
        return 2
    for name, path in build_all(Path(argv[0])).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
