"""Discovery on the Serverless corpus service (tests/fixtures/corpus/sls_service/): the
template, and the requirements folder, that a real `serverless package --stage dev` wrote
(Framework 3.40.0, serverless-python-requirements 6.1.2, serverless-lift 1.37.7; the
folder's README gives the commands and what was dropped)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plldb.project.discovery import discover
from plldb.project.names import FunctionNotFound, function_named
from tests.test_invoke import plldb

SERVICE = Path(__file__).parent / "fixtures" / "corpus" / "sls_service"
PACKAGED = Path(".serverless") / "cloudformation-template-update-stack.json"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A copy (invoke writes bytecode next to the handlers), resolved as discovery reports it."""
    return Path(shutil.copytree(SERVICE, tmp_path / "sls_service")).resolve()


def packaged_functions() -> dict[str, dict]:
    resources = json.loads((SERVICE / PACKAGED).read_text())["Resources"]
    return {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}


def test_the_committed_template_is_the_one_the_tests_expect() -> None:
    """The three functions, as the Framework and serverless-lift named them."""
    assert {k: (p["FunctionName"], p["Handler"]) for k, p in packaged_functions().items()} == {
        "HelloLambdaFunction": ("my-hello", "handler.hello"),
        "NotesLambdaFunction": ("notes-api-dev-notes", "app.handler"),
        "JobsWorkerLambdaFunction": ("notes-api-dev-jobsWorker", "worker.handler"),
    }


def test_every_packaged_function_is_found_with_its_handler_and_folder(service: Path) -> None:
    discovery = discover(service)
    assert (discovery.kind, discovery.stack_name) == ("Serverless Framework service", "notes-api-dev")
    assert discovery.files_read == [service / "serverless.yml", service / PACKAGED]
    assert discovery.skipped == {}
    assert set(discovery.functions) == set(packaged_functions())
    found = {k: (f.handler, f.runtime, f.code_dir) for k, f in discovery.functions.items()}
    assert found == {
        "HelloLambdaFunction": ("handler.hello", "python3.12", service),
        "NotesLambdaFunction": ("app.handler", "python3.12", service / "notes_module"),
        "JobsWorkerLambdaFunction": ("worker.handler", "python3.12", service),
    }


def test_the_module_function_has_its_installed_requirements_behind_its_folder(service: Path) -> None:
    notes = discover(service).functions["NotesLambdaFunction"]
    installed = service / ".serverless" / "notes_module" / "requirements"
    assert notes.import_path == (service / "notes_module", installed)
    assert notes.package_dirs == (installed,)
    assert (installed / "inflection" / "__init__.py").is_file()


def test_custom_named_function_maps_by_physical_name_and_key(service: Path) -> None:
    """`name: my-hello` (issue 22, bug 1): both names find it; the default name does not."""
    discovery = discover(service)
    assert discovery.functions["HelloLambdaFunction"].physical_name == "my-hello"
    assert discovery.names["HelloLambdaFunction"] == ["hello", "my-hello"]
    assert function_named(discovery, "my-hello") == function_named(discovery, "hello") == "HelloLambdaFunction"
    with pytest.raises(FunctionNotFound):
        function_named(discovery, "notes-api-dev-hello")


def test_names_of_the_module_and_plugin_functions(service: Path) -> None:
    """serverless-lift's worker is not in serverless.yml's `functions:`; its key comes from its
    default name `<service>-<stage>-jobsWorker` (issue 22, bug 3)."""
    discovery = discover(service)
    assert discovery.names["NotesLambdaFunction"] == ["notes", "notes-api-dev-notes"]
    assert discovery.names["JobsWorkerLambdaFunction"] == ["jobsWorker", "notes-api-dev-jobsWorker"]
    for name in ("jobsWorker", "notes-api-dev-jobsWorker", "JobsWorkerLambdaFunction"):
        assert function_named(discovery, name) == "JobsWorkerLambdaFunction"


def test_functions_json_lists_the_packaged_functions(service: Path) -> None:
    result = plldb(["functions", "--json"], service)
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert (listing["kind"], listing["stack"], listing["skipped"]) == (
        "Serverless Framework service", "notes-api-dev", [])
    rows = {f["logical_id"]: (f["names"], f["handler"], f["source"], f["import_path"]) for f in listing["functions"]}
    installed = str(service / ".serverless" / "notes_module" / "requirements")
    assert rows == {
        "HelloLambdaFunction": (["hello", "my-hello"], "handler.hello", str(service), [str(service)]),
        "JobsWorkerLambdaFunction": (["jobsWorker", "notes-api-dev-jobsWorker"], "worker.handler",
                                     str(service), [str(service)]),
        "NotesLambdaFunction": (["notes", "notes-api-dev-notes"], "app.handler", str(service / "notes_module"),
                                [str(service / "notes_module"), installed]),
    }


@pytest.mark.parametrize("name, event, answer", [
    ("my-hello", '{"name": "Ada"}', {"function": "hello", "name": "Ada"}),
    ("jobsWorker", '{"Records": [{}, {}]}', {"function": "worker", "records": 2}),
])
def test_invoke_by_name_runs_from_the_service_folder(service: Path, name: str, event: str, answer: dict) -> None:
    result = plldb(["invoke", name, "--event", event, "--credentials", "none"], service)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == answer


def test_invoke_the_module_function_imports_the_requirements_the_plugin_installed(service: Path) -> None:
    """`inflection` (not a dependency of plldb) comes from .serverless/notes_module/requirements."""
    result = plldb(["invoke", "notes", "--event", '{"title": "Shopping List"}', "--credentials", "none"], service)
    assert result.returncode == 0, result.stderr
    installed = service / ".serverless" / "notes_module" / "requirements"
    assert json.loads(result.stdout) == {
        "function": "notes", "slug": "shopping-list", "inflection": str(installed / "inflection" / "__init__.py")}


def test_attach_asks_for_a_function_typed_by_its_service_name_by_logical_id(service: Path) -> None:
    """`plldb attach --function hello` (the serverless.yml key) or `--function my-hello` (its
    custom name) debugs that function: the session's filter names its logical id, which the
    manager matches; globs and logical ids go as typed."""
    from plldb.session.plan import typed_names

    discovery = discover(service, stage="dev")
    typed = ("hello", "my-hello", "jobsWorker", "notes*", "NotesLambdaFunction")
    assert typed_names(typed, discovery) == (
        "HelloLambdaFunction", "HelloLambdaFunction", "JobsWorkerLambdaFunction", "notes*",
        "NotesLambdaFunction",
    )
