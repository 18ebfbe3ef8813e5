"""`cdk synth` for real on the CDK fixture app, then plldb's discovery on what it wrote.

The committed ``tests/fixtures/cdk_app/cdk.out`` was written by the real tools (see the
fixture's README.md); this test proves a fresh synth still maps every function to the same
folder. It needs the CDK CLI (npm) and the Python CDK library, which CI does not install
(its time budget is tight), so there it skips and says what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from plldb.project.discovery import discover
from plldb.project.model import Discovery

FIXTURE = Path(__file__).parent / "fixtures" / "cdk_app"
PYTHON_CDK = "import aws_cdk, aws_cdk.aws_lambda_python_alpha"
SYNTH_SECONDS = 240
pytestmark = pytest.mark.timeout(SYNTH_SECONDS + 60)


def missing_cdk_tools() -> str | None:
    """Why a real synth cannot run here, with how to install what is missing; None if it can."""
    if shutil.which("cdk") is None:
        return ("the AWS CDK CLI `cdk` is not on PATH: install Node.js and npm "
                "(apt-get install nodejs npm) and then `npm install -g aws-cdk`")
    python = shutil.which("python3")  # what the fixture's cdk.json runs: `python3 app.py`
    if python is None or subprocess.run([python, "-c", PYTHON_CDK], capture_output=True, timeout=60).returncode:
        return (f"python3 on PATH ({python}) cannot `{PYTHON_CDK}`: "
                "pip install aws-cdk-lib aws-cdk.aws-lambda-python-alpha into it")
    return None


def copy_app(tmp_path: Path, name: str, with_cdk_out: bool) -> Path:
    root = tmp_path / name
    shutil.copytree(FIXTURE, root, ignore=None if with_cdk_out else shutil.ignore_patterns("cdk.out"))
    return root


def folders(discovery: Discovery, app: Path) -> dict[str, tuple[str, ...]]:
    """Each function's import path relative to the app, a synthesized asset folder as
    ``<asset>`` (its hash may change with the CDK version)."""
    def name(path: Path) -> str:
        relative = path.relative_to(app)
        return "<asset>" if relative.parts[0] == "cdk.out" else relative.as_posix()

    return {k: tuple(name(p) for p in f.import_path) for k, f in discovery.functions.items()}


def test_real_synth_maps_the_functions_like_the_committed_cdk_out(tmp_path: Path) -> None:
    reason = missing_cdk_tools()
    if reason:
        pytest.skip(f"real `cdk synth` not run: {reason}")
    app = copy_app(tmp_path, "synthesized", with_cdk_out=False)
    # PythonFunction bundles in Docker; local_docker.py runs the same bundling command here.
    environment = {**os.environ, "CDK_DOCKER": str(app / "local_docker.py"), "CDK_DISABLE_CLI_TELEMETRY": "true"}
    synth = subprocess.run(["cdk", "synth", "--no-notices", "--quiet"], cwd=app, env=environment,
                           capture_output=True, text=True, timeout=SYNTH_SECONDS)
    assert synth.returncode == 0, synth.stdout + synth.stderr
    fresh = discover(app)
    committed_app = copy_app(tmp_path, "committed", with_cdk_out=True)
    committed = discover(committed_app)
    assert folders(fresh, app) == folders(committed, committed_app)
    assert folders(fresh, app)["OrdersFunctionC129706A"] == ("functions/orders", "<asset>")
    orders_asset = fresh.functions["OrdersFunctionC129706A"].import_path[1]
    assert (orders_asset / "orders_dep" / "__init__.py").read_text() == 'VALUE = "from the bundled asset"\n'
    assert fresh.stack_name == committed.stack_name == "cdk-app-dev"
    assert [p.name for p in fresh.files_read] == [p.name for p in committed.files_read]
