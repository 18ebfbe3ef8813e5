"""Issue 22 on the SAM/CloudFormation reader: what synthetic templates shaped like real
projects found (self-nesting, Architectures, CDK asset metadata, PYTHONPATH, names)."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from plldb.project.discovery import discover
from plldb.project.model import LayerMapping, LocalFunction
from plldb.project.names import FunctionNotFound, function_named
from plldb.project.python_version import version_warnings
from plldb.project.templates import DiscoveryError
from tests.test_discovery import LOCAL, sam, write

pytestmark = pytest.mark.timeout(30)


def test_an_application_nesting_its_own_template_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": sam("""
        Resources:
          Again: {Type: AWS::Serverless::Application, Properties: {Location: template.yaml}}
        """)})
    with pytest.raises(DiscoveryError) as error:
        discover(tmp_path / "template.yaml")
    assert str(error.value) == (
        "nested stack Again: its template template.yaml is the template itself (template.yaml -> "
        "template.yaml), so it would nest without end (CloudFormation cannot deploy that): point it "
        "at the child application's own template"
    )


def test_a_cycle_through_a_child_names_the_chain(tmp_path: Path) -> None:
    write(tmp_path, {
        "template.yaml": sam("""
            Resources:
              Child: {Type: AWS::Serverless::Application, Properties: {Location: child.yaml}}
            """),
        "child.yaml": sam("""
            Resources:
              Back: {Type: AWS::Serverless::Application, Properties: {Location: template.yaml}}
            """),
    })
    with pytest.raises(DiscoveryError, match=r"is a template that contains it \(template.yaml -> child.yaml "
                                             r"-> template.yaml\)"):
        discover(tmp_path / "template.yaml")


def test_a_functions_own_architectures_beat_globals(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": sam(f"""
        Globals:
          Function: {{Architectures: [x86_64], Runtime: {LOCAL}, Handler: app.h}}
        Resources:
          Arm: {{Type: AWS::Serverless::Function, Properties: {{Architectures: [arm64]}}}}
          Default: {{Type: AWS::Serverless::Function}}
        """), "app.py": ""})
    found = discover(tmp_path / "template.yaml")
    assert found.functions["Arm"].architecture == "arm64"
    assert found.functions["Default"].architecture == "x86_64"


def _cdk_template(code: dict, metadata: dict) -> str:
    return json.dumps({"Resources": {"Fn": {
        "Type": "AWS::Lambda::Function", "Metadata": metadata,
        "Properties": {"Code": code, "Handler": "index.handler", "Runtime": LOCAL},
    }}})


def test_a_cdk_template_given_as_template_runs_its_asset_folder(tmp_path: Path) -> None:
    """As `sam local invoke -t cdk.out/Stack.template.json` does."""
    s3 = {"S3Bucket": {"Fn::Sub": "cdk-${AWS::AccountId}"}, "S3Key": "abc.zip"}
    write(tmp_path, {
        "stack.json": _cdk_template(s3, {"aws:asset:path": "asset.abc", "aws:cdk:path": "Stack/Api/Resource"}),
        "asset.abc/index.py": "",
    })
    found = discover(tmp_path / "stack.json")
    assert found.functions["Fn"].code_dir == (tmp_path / "asset.abc").resolve()
    assert found.names["Fn"] == ["Stack/Api", "Api"]


def test_without_its_asset_folder_the_code_is_in_s3(tmp_path: Path) -> None:
    write(tmp_path, {"stack.json": _cdk_template({"S3Bucket": "b", "S3Key": "k.zip"}, {"aws:asset:path": "asset.x"})})
    assert discover(tmp_path / "stack.json").skipped["Fn"] == "code in S3 (s3://b/k.zip), not on this machine"


def test_pythonpath_entries_map_to_the_code_and_layer_folders(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": sam(f"""
        Resources:
          Shared: {{Type: AWS::Serverless::LayerVersion, Properties: {{ContentUri: layer}}}}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Runtime: {LOCAL}
              Handler: app.h
              CodeUri: src
              Layers: [!Ref Shared]
              Environment:
                Variables:
                  PYTHONPATH: /var/runtime:/var/task/vendored:/opt/python/extra:/srv/lib
        """), "src/app.py": "", "src/vendored/dep.py": "", "layer/python/extra/x.py": ""})
    found = discover(tmp_path / "template.yaml")
    root = tmp_path.resolve()
    assert found.functions["Fn"].import_path == (
        root / "src", root / "src/vendored", root / "layer/python/extra", root / "layer/python")
    assert found.warnings == [
        "Fn: PYTHONPATH entries /srv/lib name no folder of its code or layers here; plldb searches "
        "only the ones under /var/task and /opt"
    ]
    assert found.functions["Fn"].layers == (LayerMapping("Shared", root / "layer/python"),)


def test_variables_resolve_where_they_can_and_stay_as_written_otherwise(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": sam(f"""
        Parameters: {{Stage: {{Type: String, Default: dev}}}}
        Resources:
          Table: {{Type: AWS::DynamoDB::Table}}
          Fn:
            Type: AWS::Serverless::Function
            Properties:
              Runtime: {LOCAL}
              Handler: app.h
              FunctionName: !Sub "orders-${{Stage}}"
              Environment: {{Variables: {{PREFIX: !Sub "app-${{Stage}}", TABLE_NAME: !Ref Table}}}}
        """), "app.py": ""})
    function = discover(tmp_path / "template.yaml").functions["Fn"]
    assert function.environment == {"PREFIX": "app-dev", "TABLE_NAME": {"Ref": "Table"}}
    assert function.physical_name == "orders-dev"


def test_functions_are_found_by_any_of_their_names(tmp_path: Path) -> None:
    metadata = {"aws:cdk:path": "Stack/UrlShortenerFunction/Resource"}
    document = json.loads(_cdk_template("code", metadata))
    document["Resources"]["Fn"]["Properties"]["FunctionName"] = "url-shortener"
    write(tmp_path, {"stack.json": json.dumps(document), "code/index.py": ""})
    found = discover(tmp_path / "stack.json")
    for name in ("Fn", "url-shortener", "Stack/UrlShortenerFunction", "UrlShortenerFunction"):
        assert function_named(found, name) == "Fn"
    with pytest.raises(FunctionNotFound) as error:
        function_named(found, "Shortener")
    assert str(error.value) == (
        f"no function 'Shortener' in the SAM/CloudFormation template (read {tmp_path.resolve() / 'stack.json'}); "
        "Python functions there: Fn (url-shortener, Stack/UrlShortenerFunction, UrlShortenerFunction). "
        "Give one of these names (`plldb functions` lists them), or pass --template, --cdk-out or "
        "--stage for another project"
    )


def test_a_name_two_functions_share_is_refused_with_both(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": sam(f"""
        Resources:
          A: {{Type: AWS::Serverless::Function, Metadata: {{aws:cdk:path: S1/Handler/Resource}}, Properties: {{Runtime: {LOCAL}, Handler: app.h}}}}
          B: {{Type: AWS::Serverless::Function, Metadata: {{aws:cdk:path: S2/Handler/Resource}}, Properties: {{Runtime: {LOCAL}, Handler: app.h}}}}
        """), "app.py": ""})
    with pytest.raises(FunctionNotFound, match=r"'Handler' names several functions of the SAM/CloudFormation "
                                               r"template \(read .*\): A, B; give one of these logical ids"):
        function_named(discover(tmp_path / "template.yaml"), "Handler")


def _function(runtime: str) -> LocalFunction:
    return LocalFunction("Fn", "app.h", runtime, Path("."), (Path("."),))


@pytest.mark.parametrize("runtime, today, advice", [
    ("python3.9", datetime.date(2026, 12, 6),
     "plldb runs on Python 3.10 and newer, not 3.9; AWS blocks updates to python3.9 functions since "
     "2026-03-09: upgrade the function's runtime (to python3.13) and test it with plldb"),
    ("python3.8", datetime.date(2026, 12, 6),
     "plldb runs on Python 3.10 and newer, not 3.8; AWS no longer lets you update python3.8 functions: "
     "upgrade the function's runtime (to python3.13) and test it with plldb"),
    ("python3.10", datetime.date(2026, 12, 6),
     "To match, run plldb under Python 3.10: pipx install --python python3.10 plldb (or uv tool install "
     "--python 3.10 plldb); AWS blocks updates to python3.10 functions from 2027-01-15; plan to upgrade "
     "it (to python3.13)"),
    ("python3.14", datetime.date(2026, 12, 6),
     "To match, run plldb under Python 3.14: pipx install --python python3.14 plldb (or uv tool install "
     "--python 3.14 plldb)"),
])
def test_version_advice_is_something_that_works(runtime: str, today: datetime.date, advice: str) -> None:
    (warning,) = version_warnings([_function(runtime)], (3, 12), today)
    assert warning == (f"function Fn: runtime {runtime} but plldb runs handlers on Python 3.12; "
                       f"version-specific behaviour may differ. {advice}")
    assert "pipx install --python python3.9" not in warning
