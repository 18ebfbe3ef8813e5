"""Module names, traces and import semantics of handlers in the executor, as in Lambda."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from plldb.local import public_names
from plldb.local.executor import Executor
from tests.test_executor import FIXTURES, Answers, invocation, local_function, make_executor, run

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def answers() -> Answers:
    return Answers()


def names_function(handler: str) -> AbstractContextManager[Executor]:
    return make_executor({"names": local_function("Names", handler, FIXTURES / "names")})


def test_user_code_sees_lambdas_module_names(answers: Answers) -> None:
    with names_function("app.names") as executor:
        result = json.loads(run(executor, answers, invocation("stack-Names")).body)
    assert result == {"name": "app", "logger": "app", "helpers": "helpers", "class": "helpers"}


def test_code_that_looks_modules_up_by_name_finds_the_functions(answers: Answers) -> None:
    with names_function("app.lookups_by_module_name") as executor:
        outcome = run(executor, answers, invocation("stack-Names"))
        assert json.loads(outcome.body) == {"dataclass": "order", "hints": ["id", "name"], "pickle": True}
        assert isinstance(sys.modules["models"], public_names.PublicModule)
    assert "models" not in sys.modules, "listed only while the executor runs"


@pytest.mark.parametrize(("handler", "error_type", "message", "files"), [
    ("app.import_missing_name", "ImportError",
     f"cannot import name 'not_there' from 'helpers' ({FIXTURES / 'names' / 'helpers.py'})", ["app.py"]),
    ("app.import_missing_module", "ModuleNotFoundError", "No module named 'pkg.missing'", ["app.py"]),
    ("app.import_failing", "ValueError", "failing at import", ["app.py", "failing.py"]),
])
def test_import_errors_at_call_time_read_as_in_lambda(
    handler: str, error_type: str, message: str, files: list[str], answers: Answers
) -> None:
    with names_function(handler) as executor:
        error = run(executor, answers, invocation("stack-Names")).error
    assert (error["errorType"], error["errorMessage"]) == (error_type, message)
    assert [Path(line.split('"')[1]).name for line in error["stackTrace"]] == files, "no plldb frames"


def test_init_error_trace_has_no_plldb_frames(answers: Answers) -> None:
    with names_function("broken_init.handler") as executor:
        error = run(executor, answers, invocation("stack-Names")).error
    files = [line.split('"')[1] for line in error["stackTrace"]]
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "failing at import")
    assert not [f for f in files if "plldb" in f and "fixtures" not in f]
    assert [Path(f).name for f in files[-2:]] == ["broken_init.py", "failing.py"]
    assert files[0].endswith("importlib/__init__.py"), "like awslambdaric, which imports with importlib"


@pytest.mark.parametrize(("handler", "expected"), [
    ("stdlib_not_shadowed", "&lt;b&gt;"),
    ("resources", "packaged resource"),
    ("find_spec", [True, True]),
    ("dict_config", "handlers"),
    ("working_directory", "beside the code"),
])
def test_imports_behave_as_with_the_task_root_on_sys_path(handler: str, expected: object, answers: Answers) -> None:
    function = local_function("Imports", f"app.{handler}", FIXTURES / "imports")
    with make_executor({"imports": function}) as executor:
        assert run(executor, answers, invocation("stack-Imports")).body == json.dumps(expected).encode()


def test_working_directory_is_the_code_folder_only_with_one_function() -> None:
    started = os.getcwd()
    with make_executor({"imports": local_function("Imports", "app.layer", FIXTURES / "imports")}):
        assert os.getcwd() == str(FIXTURES / "imports")
    assert os.getcwd() == started
    with make_executor({"a": local_function("A", "app.layer", FIXTURES / "imports"),
                        "b": local_function("B", "app.whoami", FIXTURES / "alpha")}):
        assert os.getcwd() == started


def test_layer_with_site_packages_layout(tmp_path: Path, answers: Answers) -> None:
    layer = tmp_path / "layer" / "python"
    site = layer / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    site.mkdir(parents=True)
    (site / "layerlib.py").write_text("WHERE = 'site-packages'\n")
    function = local_function("Imports", "app.layer", FIXTURES / "imports")
    function = dataclasses.replace(function, import_path=(*function.import_path, layer))
    with make_executor({"imports": function}) as executor:
        assert json.loads(run(executor, answers, invocation("stack-Imports")).body) == "site-packages"


@pytest.mark.parametrize(("handler", "error_type", "message"), [
    (".handler", "ValueError", "Empty module name"),
    ("json.handler", "Runtime.HandlerNotFound", "Handler 'handler' missing on module 'json'"),
])
def test_handler_names_fail_as_in_lambda(handler: str, error_type: str, message: str, answers: Answers) -> None:
    with make_executor({"imports": local_function("Imports", handler, FIXTURES / "imports")}) as executor:
        error = run(executor, answers, invocation("stack-Imports")).error
    assert (error["errorType"], error["errorMessage"]) == (error_type, message)
