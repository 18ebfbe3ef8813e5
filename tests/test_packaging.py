"""Deterministic zips: same sources give the same bytes, with exactly the expected files."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from plldb.cloud import packaging

SOURCE = packaging.PACKAGE_DIR


def _entries(data: bytes) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        return {info.filename: info for info in archive.infolist()}


def _present(names: list[str]) -> list[str]:
    return [n for n in names if (SOURCE / n).is_file()]


def test_two_builds_give_identical_bytes(tmp_path: Path) -> None:
    first = packaging.build_all(tmp_path / "a")
    second = packaging.build_all(tmp_path / "b")
    assert set(first) == {*packaging.LAMBDA_NAMES, packaging.LAYER_NAME}
    for name in first:
        assert first[name].name == second[name].name  # content-addressed names agree
        assert first[name].read_bytes() == second[name].read_bytes()
        assert first[name].name.startswith(f"{name}-") and first[name].suffix == ".zip"


def test_lambda_zip_listing_modes_and_timestamps() -> None:
    expected = _present(["__init__.py", "naming.py", "limits.py", "protocol.py", "routing.py", "route_table.py"])
    expected += sorted(p.relative_to(SOURCE).as_posix() for p in (SOURCE / "lambdas").rglob("*.py"))
    for name in packaging.LAMBDA_NAMES:
        entries = _entries(packaging.lambda_zip(name))
        assert sorted(entries) == sorted(f"plldb/{n}" for n in expected)
        assert list(entries) == sorted(entries)  # stored in sorted order
        for info in entries.values():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert (info.external_attr >> 16) & 0o777 == 0o644


def test_layer_zip_listing_and_executable_wrapper() -> None:
    expected = _present(["__init__.py", "naming.py", "limits.py", "protocol.py", "routing.py", "route_table.py"])
    expected += sorted(p.relative_to(SOURCE).as_posix() for p in (SOURCE / "runner").rglob("*.py"))
    expected += sorted(f"layer/{p.name}" for p in (SOURCE / "layer").glob("*.py"))
    names = [f"plldb-shim/plldb/{n}" for n in expected]
    if (SOURCE / "layer" / "wrapper").is_file():
        names.append("plldb-shim/wrapper")
    entries = _entries(packaging.layer_zip())
    assert sorted(entries) == sorted(names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in entries)
    for name, info in entries.items():
        mode = 0o755 if name == "plldb-shim/wrapper" else 0o644
        assert (info.external_attr >> 16) & 0o777 == mode, name
        assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_zip_content_matches_sources() -> None:
    with zipfile.ZipFile(io.BytesIO(packaging.lambda_zip("manager"))) as archive:
        assert archive.read("plldb/protocol.py") == (SOURCE / "protocol.py").read_bytes()


def test_unknown_lambda_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown helper Lambda 'nope'"):
        packaging.lambda_zip("nope")


def test_module_entry_point_builds_into_a_directory(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "plldb.cloud.packaging", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    built = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert len(built) == 6 and all(n.endswith(".zip") for n in built)
    assert "manager: " in result.stdout
