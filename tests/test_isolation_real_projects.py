"""Per-function import isolation on shapes real projects have (issue 22): bundled six and its
meta-path importer, a layer one function has and another has not, a relative import in a
top-level handler module."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import six

from plldb.project.model import LocalFunction
from tests.test_executor import RUNTIME, Answers, invocation, make_executor, run

pytestmark = pytest.mark.timeout(60)


def function(name: str, handler: str, code: Path, *layers: Path) -> LocalFunction:
    return LocalFunction(name, handler, RUNTIME, code, (code, *layers), physical_name=name)


def test_six_moves_imports_from_a_bundled_six(tmp_path: Path) -> None:
    """six installs a meta-path importer for six.moves; it must answer inside the namespace."""
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(six.__file__, code / "six.py")  # as pip puts it beside python-dateutil
    (code / "app.py").write_text(
        "from six.moves import urllib\nimport six.moves.urllib.parse as parse\n\n"
        "def handler(event, context):\n    return [urllib.parse.quote('a b'), parse.unquote('c%20d')]\n")
    with make_executor({"Fn": function("Fn", "app.handler", code)}) as executor:
        outcome = run(executor, Answers(), invocation("Fn"))
    assert outcome.ok, outcome.body
    assert json.loads(outcome.body) == ["a%20b", "c d"]


def test_a_layer_module_is_not_seen_by_a_function_without_that_layer(tmp_path: Path) -> None:
    """A and D share a code folder; only A has the layer holding `common`."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "a.py").write_text("import common\n\ndef handler(e, c):\n    return common.NAME\n")
    (tmp_path / "shared" / "d.py").write_text("import common\n\ndef handler(e, c):\n    return common.NAME\n")
    (tmp_path / "layer" / "python").mkdir(parents=True)
    (tmp_path / "layer" / "python" / "common.py").write_text("NAME = 'from the layer'\n")
    functions = {"A": function("A", "a.handler", tmp_path / "shared", tmp_path / "layer" / "python"),
                 "D": function("D", "d.handler", tmp_path / "shared")}
    with make_executor(functions) as executor:
        a = run(executor, Answers(), invocation("A"))
        d = run(executor, Answers(), invocation("D"))
    assert json.loads(a.body) == "from the layer"
    error = json.loads(d.body)
    assert (error["errorType"], error["errorMessage"]) == (
        "Runtime.ImportModuleError", "Unable to import module 'd': No module named 'common'")


def test_a_relative_import_in_a_top_level_handler_module_fails_as_in_lambda(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("from .utils import x\n\ndef handler(e, c):\n    return x\n")
    (tmp_path / "utils.py").write_text("x = 1\n")
    with make_executor({"Fn": function("Fn", "app.handler", tmp_path)}) as executor:
        error = json.loads(run(executor, Answers(), invocation("Fn")).body)
    assert (error["errorType"], error["errorMessage"]) == (
        "Runtime.ImportModuleError",
        "Unable to import module 'app': attempted relative import with no known parent package")
