"""Discovery on the real-world template shapes of issue 13 (tests/fixtures/templates/<case>).

Each case is a small project folder; the ``built-*`` ones hold real ``sam build`` output
(see the folder's README). Every test here failed before the fix it names.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plldb.project.discovery import discover
from plldb.project.samconfig import parameter_overrides
from plldb.project.stack_mapping import map_stack_functions
from tests.test_executor import Answers, invocation, make_executor, run

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
pytestmark = pytest.mark.timeout(30)


def stack_resources(*logical_ids: str) -> list[dict]:
    return [
        {"LogicalResourceId": logical_id, "PhysicalResourceId": f"stack-{logical_id.replace('/', '-')}",
         "ResourceType": "AWS::Lambda::Function"}
        for logical_id in logical_ids
    ]


def test_built_template_alone_imports_and_runs() -> None:
    """Case 1: the build folder is the code folder; its modules import (was: No module named 'app')."""
    build = (FIXTURES / "built-only" / ".aws-sam" / "build").resolve()
    found = discover(build / "template.yaml")
    function = found.functions["HelloWorldFunction"]
    assert function.code_dir == build / "HelloWorldFunction"
    assert function.package_dirs == ()
    assert function.timeout == 3
    assert len(found.warnings) == 1 and "records no source folder for HelloWorldFunction" in found.warnings[0]
    mapping = map_stack_functions(found, stack_resources("HelloWorldFunction"))
    answers = Answers()
    with make_executor(mapping.functions) as executor:
        outcome = run(executor, answers, invocation("stack-HelloWorldFunction", {"name": "ada"}))
    assert outcome.ok, outcome.error
    assert json.loads(outcome.body) == {"message": "hello ada"}


def test_built_from_another_template_maps_to_its_own_source() -> None:
    """Case 2: ``sam build -t other.yaml``: build.toml, not the folder's template.yaml, says
    where the code came from."""
    project = (FIXTURES / "built-other-template").resolve()
    found = discover(project / ".aws-sam" / "build" / "template.yaml")
    function = found.functions["Hello"]
    assert function.code_dir == project / "src" / "hello"
    assert function.package_dirs == (project / ".aws-sam" / "build" / "Hello",)
    assert found.warnings == []
    answers = Answers()
    with make_executor(map_stack_functions(found, stack_resources("Hello")).functions) as executor:
        outcome = run(executor, answers, invocation("stack-Hello"))
    assert outcome.ok, outcome.error
    assert json.loads(outcome.body) == "other"  # src/hello/app.py importing its helpers


def test_built_template_without_build_record_uses_the_build_copy(tmp_path: Path) -> None:
    """Case 2, unknowable: no build.toml; the unrelated template.yaml next to .aws-sam is not used."""
    project = tmp_path / "project"
    shutil.copytree(FIXTURES / "built-other-template", project)
    (project / ".aws-sam" / "build.toml").unlink()
    found = discover(project / ".aws-sam" / "build" / "template.yaml")
    assert found.functions["Hello"].code_dir == (project / ".aws-sam" / "build" / "Hello").resolve()
    assert "records no source folder for Hello; running the build copies" in found.warnings[0]
    assert "pass --template with the source template" in found.warnings[0]


PARTIAL_SKIPPED = {
    "S3Uri": "code in S3 (s3://my-bucket/code/fn.zip), not on this machine",
    "S3Location": "code in S3 (s3://my-bucket/code/fn.zip), not on this machine",
    "Zipped": "code is the file dist/fn.zip, not a folder: plldb imports from folders (unzip it and point CodeUri at the folder)",
    "WebAdapter": "Lambda Web Adapter: handler run.sh starts a web server, not a Python handler plldb can call; run the web app locally instead",
    "HandlerMissing": "handler app.handler -> {root}/missing/app.py not found",
    "FromOutside": "Handler !GetAtt Somewhere.Handler: !GetAtt needs the deployed stack",
    "PackagedElsewhere": "code in S3 (s3://!Ref ArtifactBucket/lambda/fn.zip), not on this machine",
    "NoRuntime": "no Runtime in the template",
}


def test_unmappable_functions_are_skipped_one_by_one() -> None:
    """Case 3: S3, archive, web adapter, missing file, !GetAtt: each its own reason; the rest maps."""
    root = (FIXTURES / "partial-functions").resolve()
    found = discover(root / "template.yaml")
    assert found.skipped == {name: why.format(root=root.as_posix()) for name, why in PARTIAL_SKIPPED.items()}
    assert sorted(found.functions) == ["Good", "HandlerFromParameter", "SingleFile"]
    assert found.functions["HandlerFromParameter"].handler == "app.handler"
    single = found.functions["SingleFile"]
    assert (single.code_dir, single.handler) == (root / "single", "handler.main")

    mapping = map_stack_functions(found, stack_resources("Good", "HandlerFromParameter", "SingleFile", *PARTIAL_SKIPPED))
    assert sorted(mapping.functions) == ["stack-Good", "stack-HandlerFromParameter", "stack-SingleFile"]
    assert set(mapping.skipped) == {f"stack-{name}" for name in PARTIAL_SKIPPED}
    answers = Answers()
    with make_executor(mapping.functions) as executor:
        calls = {name: invocation(f"stack-{name}") for name in ("Good", "HandlerFromParameter", "SingleFile")}
        for message in calls.values():
            executor.submit(message, answers)
        results = {name: answers.result(message["request_id"]) for name, message in calls.items()}
    assert results == {"Good": "good", "HandlerFromParameter": "good", "SingleFile": "single"}


def test_functions_of_remote_nested_stacks_are_warnings() -> None:
    """Case 4: SAR apps and https TemplateURLs: their functions are skipped, not an abort."""
    found = discover(FIXTURES / "nested-remote" / "template.yaml")
    assert list(found.functions) == ["Local"]
    mapping = map_stack_functions(found, stack_resources("Local", "SarApp/Resizer", "RemoteStack/Worker"))
    assert list(mapping.functions) == ["stack-Local"]
    assert mapping.skipped == {
        "stack-SarApp-Resizer": "in SarApp, nested stack: Serverless Application Repository app "
        "arn:aws:serverlessrepo:us-east-1:123456789012:applications/image-resizer, not local",
        "stack-RemoteStack-Worker": "in RemoteStack, nested stack: template "
        "https://my-bucket.s3.amazonaws.com/child.yaml is not a local file",
    }


def test_parameters_resolve_from_defaults_and_samconfig_overrides() -> None:
    """Case 5: ``Runtime: !Ref`` with a Python default; CodeUri and Handler from samconfig."""
    root = (FIXTURES / "parameters").resolve()
    found = discover(root / "template.yaml", python_version=(3, 12))
    function = found.functions["Orders"]
    assert function.runtime == "python3.12"
    assert function.code_dir == root / "functions" / "orders"
    assert function.handler == "main.handler"
    assert function.memory_size == 256
    assert found.skipped == {} and found.warnings == []


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("samconfig.toml", '[default.deploy.parameters]\nparameter_overrides = "A=1 B=\'x y\' C=k=v"\n'),
        ("samconfig.toml", '[default.deploy.parameters]\nparameter_overrides = ["A=1", "B=x y", "C=k=v"]\n'),
        ("samconfig.yaml", "default:\n  global:\n    parameters:\n      parameter_overrides:\n        - A=1\n        - B=x y\n        - C=k=v\n"),
    ],
    ids=["toml-string", "toml-list", "yaml-list"],
)
def test_parameter_overrides_string_and_list_forms(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    assert parameter_overrides(tmp_path) == {"A": "1", "B": "x y", "C": "k=v"}


def test_foreach_functions_are_found() -> None:
    """Case 6: Fn::ForEach over a literal list and a CommaDelimitedList parameter."""
    root = (FIXTURES / "foreach").resolve()
    found = discover(root / "template.yaml")
    assert sorted(found.functions) == ["Workergamma", "alphaFunction", "betaFunction"]
    assert found.functions["betaFunction"].code_dir == root / "src" / "beta"
    assert found.functions["betaFunction"].environment == {"SERVICE": "beta"}
    assert found.functions["Workergamma"].code_dir == root / "src" / "gamma"


def test_architectures_from_if_and_ref() -> None:
    """Case 7: no KeyError; the resolvable ones are read, the unknown one is the default."""
    found = discover(FIXTURES / "architectures" / "template.yaml")
    assert {name: f.architecture for name, f in found.functions.items()} == {
        "WithIf": "arm64", "WithRef": "arm64", "WithUnknown": "x86_64",
    }


def test_json_template_indented_with_tabs() -> None:
    """Case 8: JSON allows tabs; YAML rejected them."""
    root = (FIXTURES / "json-tabs").resolve()
    found = discover(root / "template.json")
    assert found.functions["Hello"].code_dir == root / "src"


def test_one_version_warning_with_the_way_to_match() -> None:
    """Case 9: one warning for all functions, saying how to run plldb under their Python."""
    found = discover(FIXTURES / "python-versions" / "template.yaml", python_version=(3, 11))
    assert len(found.functions) == 3
    assert found.warnings == [
        "all functions: runtime python3.13 but plldb runs handlers on Python 3.11; version-specific "
        "behaviour may differ. To match, run plldb under Python 3.13: pipx install --python python3.13 "
        "plldb (or uv tool install --python 3.13 plldb)"
    ]
