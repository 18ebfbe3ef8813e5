"""The code that runs in Lambda works on every Python the runtimes cover (3.10 to 3.13).

Needs the interpreters themselves: this machine's pyenv has them (so does CI, which runs on
the same machine kind); a version that is not installed is reported as skipped, never faked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "versions"
VERSIONS = ["3.10", "3.11", "3.12", "3.13"]


def interpreter(version: str) -> str | None:
    """A real pythonX.Y: pyenv's own builds first (its shims refuse versions not selected)."""
    pyenv = Path.home() / ".pyenv" / "versions"
    candidates = sorted(pyenv.glob(f"{version}.*/bin/python{version}")) if pyenv.is_dir() else []
    if candidates:
        return str(candidates[-1])
    found = shutil.which(f"python{version}")
    return found if found and "shims" not in Path(found).parts else None


def run(python: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"})


@pytest.fixture(params=VERSIONS)
def python(request: pytest.FixtureRequest) -> str:
    found = interpreter(request.param)
    if found is None:
        pytest.skip(f"python{request.param} is not installed here")
    return found


def test_every_module_compiles(python: str, tmp_path: Path) -> None:
    """Syntax of the local tool (Python >= 3.10) and of the Lambda-side code (3.10-3.13)."""
    script = (
        "import pathlib, py_compile, sys\n"
        "root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
        "for source in sorted(root.rglob('*.py')):\n"
        "    py_compile.compile(str(source), cfile=str(out / (source.stem + '.pyc')), doraise=True)\n"
    )
    result = run(python, "-c", script, str(REPO / "plldb"), str(tmp_path))  # nothing in the repo
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_runner_gives_the_same_outcomes_on_every_version(python: str) -> None:
    here = run(sys.executable, str(FIXTURES / "run_outcomes.py"), str(REPO), str(FIXTURES))
    there = run(python, str(FIXTURES / "run_outcomes.py"), str(REPO), str(FIXTURES))
    assert there.returncode == 0, there.stderr
    expected, got = json.loads(here.stdout), json.loads(there.stdout)
    assert got == expected
    assert got["handlers.ok"]["ok"] and '"price": 1.5' in got["handlers.ok"]["body"]
    assert got["handlers.fails"]["errorType"] == "ValueError"
    assert got["handlers.fails"]["errorMessage"] == "bad order 7"
    assert got["handlers.not_serializable"]["errorType"] == "Runtime.MarshalError"
    assert got["missing_module.handler"]["errorType"] == "Runtime.ImportModuleError"
    assert got["handlers.nothing"]["errorType"] == "Runtime.HandlerNotFound"
