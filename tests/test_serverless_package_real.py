"""`serverless package` for real on the Serverless fixture service, then plldb's discovery.

The committed ``tests/fixtures/serverless_service/.serverless/`` template was written by the
real Serverless Framework v3 (see the fixture's README.md); this test proves a fresh package
still maps every function to the same folder. It needs the Framework v3 and
serverless-python-requirements from npm, which CI does not install (its time budget is
tight), so there it skips and says what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from plldb.project.discovery import discover
from plldb.project.model import Discovery

FIXTURE = Path(__file__).parent / "fixtures" / "serverless_service"
PACKAGE_SECONDS = 240
# serverless-python-requirements runs `python3.12 -m pip` (the fixture's runtime).
RUNTIME_PYTHON = "python3.12"
pytestmark = pytest.mark.timeout(PACKAGE_SECONDS + 60)

INSTALL = "npm install -g serverless@3 serverless-python-requirements"
PLUGIN = "serverless-python-requirements"


def missing_serverless() -> str | None:
    """Why a real package cannot run here, with how to install what is missing; None if it can."""
    if shutil.which("serverless") is None:
        return f"the Serverless Framework `serverless` is not on PATH: install Node.js and npm, then `{INSTALL}`"
    version = subprocess.run(
        ["serverless", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        env=package_environment(os.environ.get("PATH", "")),
    )
    if "Framework Core: 3." not in version.stdout + version.stderr:
        return (
            f"`serverless` on PATH is not v3 (v4 needs an account login): `{INSTALL}`; it said: "
            f"{(version.stdout + version.stderr).strip()[:200]}"
        )
    if plugin_folder() is None:
        return (f"the fixture's plugin {PLUGIN} is not installed next to `serverless` "
                f"({framework_modules()}): `npm install -g {PLUGIN}`")
    return None


def framework_modules() -> Path:
    """The node_modules folder the Framework on PATH is installed in (where a global install
    puts plugins too): ``.../node_modules/serverless/bin/serverless.js``."""
    return Path(os.path.realpath(shutil.which("serverless") or "")).parents[2]


def plugin_folder() -> Path | None:
    """The plugin, where the Framework finds it: the fixture's own node_modules, or beside it."""
    for modules in (FIXTURE / "node_modules", framework_modules()):
        if (modules / PLUGIN / "package.json").is_file():
            return modules / PLUGIN
    return None


def package_environment(path: str) -> dict[str, str]:
    """Dummy credentials and a region (v3 packages without calling AWS), no telemetry."""
    return {
        **os.environ,
        "PATH": path,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }


def runtime_python_path(tmp_path: Path) -> str:
    """PATH with a ``python3.12``: the real one, else one standing for this machine's python3
    (the fixture's only requirement, requests, is pure Python)."""
    path = os.environ.get("PATH", "")
    if runs_pip(shutil.which(RUNTIME_PYTHON)):
        return path
    python = shutil.which("python3")
    if not runs_pip(python):
        pytest.skip(
            f"real `serverless package` not run: neither {RUNTIME_PYTHON} nor python3 on PATH runs "
            f"pip (the plugin installs requirements.txt with it): install Python {RUNTIME_PYTHON[6:]} with pip"
        )
    shim = tmp_path / "bin"
    shim.mkdir()
    # the interpreter itself: a pyenv shim linked under another name would run that name
    real = subprocess.run([python, "-c", "import sys; print(sys.executable)"], capture_output=True,
                          text=True, timeout=60).stdout.strip()
    (shim / RUNTIME_PYTHON).symlink_to(real)
    return f"{shim}{os.pathsep}{path}"


def runs_pip(python: str | None) -> bool:
    """Whether ``python`` runs, with pip (a pyenv shim for a version not selected does not)."""
    if python is None:
        return False
    return subprocess.run([python, "-m", "pip", "--version"], capture_output=True, timeout=60).returncode == 0


def folders(discovery: Discovery, service: Path) -> dict[str, tuple[str, ...]]:
    """Each function's import path relative to the service folder, without the folders the
    plugin installs requirements into (the committed fixture leaves them out)."""
    return {
        k: tuple(p.relative_to(service).as_posix() for p in f.import_path if p not in f.package_dirs)
        for k, f in discovery.functions.items()
    }


def test_real_package_maps_the_functions_like_the_committed_template(tmp_path: Path) -> None:
    reason = missing_serverless()
    if reason:
        pytest.skip(f"real `serverless package` not run: {reason}")
    service = tmp_path / "packaged"
    shutil.copytree(FIXTURE, service, ignore=shutil.ignore_patterns(".serverless"))
    package = subprocess.run(
        ["serverless", "package", "--stage", "dev"],
        cwd=service,
        env=package_environment(runtime_python_path(tmp_path)),
        capture_output=True,
        text=True,
        timeout=PACKAGE_SECONDS,
    )
    assert package.returncode == 0, package.stdout + package.stderr
    fresh = discover(service)
    committed_service = shutil.copytree(FIXTURE, tmp_path / "committed")
    committed = discover(committed_service)
    assert folders(fresh, service) == folders(committed, committed_service)
    assert folders(fresh, service) == {
        "HelloLambdaFunction": (".",),
        "ListDashitemsLambdaFunction": (".",),
        "OrdersUnderscoresyncLambdaFunction": ("orders_module",),
    }
    assert {k: f.handler for k, f in fresh.functions.items()} == {
        k: f.handler for k, f in committed.functions.items()
    }
    orders = fresh.functions["OrdersUnderscoresyncLambdaFunction"]
    assert orders.package_dirs == (service / ".serverless" / "orders_module" / "requirements",)
    assert (orders.package_dirs[0] / "requests").is_dir(), "the plugin installed requirements.txt there"
    assert fresh.stack_name == committed.stack_name == "shop-api-dev"
    assert [p.name for p in fresh.files_read] == [p.name for p in committed.files_read]
