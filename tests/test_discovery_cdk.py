"""Discovery of an AWS CDK app's Python functions through its synthesized cdk.out."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from plldb.project.discovery import discover
from plldb.project.stack_mapping import map_stack_functions
from plldb.project.templates import DiscoveryError

FIXTURE = Path(__file__).parent / "fixtures" / "cdk_app"
ORDERS_ASSET = "asset.c27576a4c7b98e4837873ff376508397e361cc06a243ed0eb216cb38cf0da632"
PLAIN_ASSET = "asset.1e06eb72874d6808548f7645b0f55f25179ce73bff9b0daf25a804cfd99dacdf"
GENERATED_ASSET = "asset.ef8e01943514691871b403582c9e35cf5faa89add2e9213dfdefd9eb5930b87d"
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of the fixture app whose cdk.out is newer than every source file."""
    root = tmp_path / "app"
    shutil.copytree(FIXTURE, root)
    for path in root.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))
    os.utime(root / "cdk.out" / "manifest.json", (2_000_000, 2_000_000))
    return root


def test_functions_map_to_their_source_folders(app: Path) -> None:
    discovery = discover(app / "template.yaml")
    assert discovery.kind == "AWS CDK app"
    assert discovery.stack_name == "cdk-app-dev"
    assert discovery.template == app / "cdk.out" / "CdkAppStack.template.json"
    assert app / "cdk.out" / "manifest.json" in discovery.files_read
    plain = discovery.functions["PlainFunction82E70C5A"]
    assert (plain.handler, plain.runtime, plain.code_dir) == ("index.handler", "python3.12", app / "lambda")
    assert plain.import_path == (app / "lambda",)


def test_bundled_asset_keeps_requirements_behind_the_source(app: Path) -> None:
    orders = discover(app).functions["OrdersFunctionC129706A"]
    asset = app / "cdk.out" / ORDERS_ASSET
    assert orders.code_dir == app / "functions" / "orders"
    assert orders.import_path == (app / "functions" / "orders", asset)
    assert orders.package_dirs == (asset,)


def test_asset_without_source_runs_the_asset_with_a_warning(app: Path) -> None:
    discovery = discover(app)
    generated = discovery.functions["GeneratedFunction88BC45F2"]
    assert generated.code_dir == app / "cdk.out" / GENERATED_ASSET
    [warning] = [w for w in discovery.warnings if w.startswith("GeneratedFunction88BC45F2")]
    assert f"running the asset folder itself: set breakpoints in cdk.out/{GENERATED_ASSET}" in warning
    assert "cdk synth --no-staging" in warning


def test_edited_source_is_no_longer_mapped(app: Path) -> None:
    """An asset whose copy differs from the source (edited since synth) is not that source."""
    (app / "lambda" / "index.py").write_text("def handler(event, context):\n    return 'edited'\n")
    os.utime(app / "lambda" / "index.py", (1_000_000, 1_000_000))
    discovery = discover(app)
    assert discovery.functions["PlainFunction82E70C5A"].code_dir.name.startswith("asset.")
    assert any(w.startswith("PlainFunction82E70C5A: no folder of") for w in discovery.warnings)


def test_template_inside_cdk_out_is_read_as_the_cdk_app(app: Path) -> None:
    discovery = discover(app / "cdk.out" / "CdkAppStack.template.json")
    assert discovery.stack_name == "cdk-app-dev"
    assert discovery.functions["PlainFunction82E70C5A"].code_dir == app / "lambda"


def test_no_staging_asset_paths_are_the_source(app: Path) -> None:
    template = app / "cdk.out" / "CdkAppStack.template.json"
    document = json.loads(template.read_text())
    document["Resources"]["PlainFunction82E70C5A"]["Metadata"]["aws:asset:path"] = str(app / "lambda")
    template.write_text(json.dumps(document))
    discovery = discover(app)
    assert discovery.functions["PlainFunction82E70C5A"].code_dir == app / "lambda"
    assert not any(w.startswith("PlainFunction82E70C5A") for w in discovery.warnings)


def test_missing_cdk_out_names_cdk_synth(app: Path) -> None:
    shutil.rmtree(app / "cdk.out")
    with pytest.raises(DiscoveryError) as error:
        discover(app / "template.yaml")
    assert str(error.value) == (
        f"CDK app {app}: no synthesized app ({app / 'cdk.out' / 'manifest.json'} not found): run "
        f"`cdk synth` in {app} first (plldb reads the templates and assets it writes to cdk.out)"
    )


def test_stale_cdk_out_warns_with_the_command(app: Path) -> None:
    os.utime(app / "lambda" / "index.py", (3_000_000, 3_000_000))
    warnings = discover(app).warnings
    assert f"{app / 'cdk.out'} is older than the source (lambda/index.py changed after the last synth): " \
        "plldb may map functions to outdated templates and run the copies in cdk.out; run `cdk synth`" in warnings


def test_a_stale_cdk_out_is_named_first_as_the_cause(app: Path) -> None:
    """Issue 22, bug 7: an edit after the synth, not a missing folder, is why the asset matches
    no source; the advice is to synthesize again, not to set breakpoints in cdk.out."""
    (app / "lambda" / "index.py").write_text("def handler(event, context):\n    return 'edited'\n")
    os.utime(app / "lambda" / "index.py", (3_000_000, 3_000_000))
    first, second = discover(app).warnings[:2]
    assert first.startswith(f"{app / 'cdk.out'} is older than the source (lambda/index.py changed")
    assert second == (
        f"PlainFunction82E70C5A: its code in cdk.out/{PLAIN_ASSET} matches no folder of {app}, most likely "
        "because the source changed after the last synth: run `cdk synth` (until then plldb runs "
        f"cdk.out/{PLAIN_ASSET}, and breakpoints set in the source do not bind)"
    )


def test_fresh_cdk_out_has_no_stale_warning(app: Path) -> None:
    assert not any("older than the source" in w for w in discover(app).warnings)


def test_unknown_stack_name_lists_the_stacks(app: Path) -> None:
    with pytest.raises(DiscoveryError) as error:
        discover(app, stack_name="other-stack")
    assert str(error.value) == (
        f"CDK app: no stack other-stack in {app / 'cdk.out' / 'manifest.json'} (stacks: cdk-app-dev); "
        "pass --stack-name with one of them, or run `cdk synth` if the app changed"
    )
    assert discover(app, stack_name="cdk-app-dev").stack_name == "cdk-app-dev"


def test_unknown_function_of_the_stack_names_the_template(app: Path) -> None:
    discovery = discover(app)
    mapping = map_stack_functions(discovery, [
        {"LogicalResourceId": "PlainFunction82E70C5A", "PhysicalResourceId": "cdk-app-dev-Plain",
         "ResourceType": "AWS::Lambda::Function"},
        {"LogicalResourceId": "RemovedFunction", "PhysicalResourceId": "cdk-app-dev-Removed",
         "ResourceType": "AWS::Lambda::Function"},
    ])
    assert list(mapping.functions) == ["cdk-app-dev-Plain"]
    assert mapping.skipped["cdk-app-dev-Removed"].startswith(
        f"function RemovedFunction has no match in {discovery.template}"
    )


def test_folder_without_cdk_json_is_read_as_sam(tmp_path: Path) -> None:
    """The CDK reader takes only what is a CDK app: a SAM template beside a cdk.out-less
    folder keeps the SAM reader, with the same model."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler(event, context):\n    return 1\n")
    (tmp_path / "template.yaml").write_text(
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n"
        "      CodeUri: src/\n      Handler: app.handler\n      Runtime: python3.11\n"
    )
    discovery = discover(tmp_path / "template.yaml")
    assert (discovery.kind, discovery.files_read, discovery.stack_name) == (
        "SAM/CloudFormation template", [tmp_path / "template.yaml"], None
    )
    assert discovery.functions["Fn"].code_dir == tmp_path / "src"


NESTED = "WorkersNestedStackWorkersNestedStackResourceCEAEF017"


def test_nested_stack_functions_map_to_source(app: Path) -> None:
    discovery = discover(app)
    worker = discovery.functions[f"{NESTED}/WorkerFunctionACE6A4B0"]
    assert (worker.handler, worker.code_dir) == ("worker.handle", app / "workers")
    assert app / "cdk.out" / "CdkAppStackWorkersB4F63023.nested.template.json" in discovery.files_read
    assert NESTED not in discovery.skipped


def test_missing_nested_template_is_skipped_with_the_command(app: Path) -> None:
    nested = app / "cdk.out" / "CdkAppStackWorkersB4F63023.nested.template.json"
    nested.unlink()
    discovery = discover(app)
    assert discovery.skipped[NESTED] == f"nested stack: template {nested} not found: run `cdk synth`"
    assert "PlainFunction82E70C5A" in discovery.functions


def test_cdk_out_option_reads_another_synthesized_folder(app: Path) -> None:
    """`cdk synth --output build/synth`: its assets still map back to the source, and the
    output folder (named anything) is not taken for a source folder."""
    (app / "build").mkdir()
    (app / "cdk.out").rename(app / "build" / "synth")
    output = app / "build" / "synth"
    discovery = discover(app / "template.yaml", cdk_out=output)
    assert discovery.kind == "AWS CDK app"
    assert discovery.files_read[0] == output / "manifest.json"
    assert discovery.functions["PlainFunction82E70C5A"].code_dir == app / "lambda"
    orders = discovery.functions["OrdersFunctionC129706A"]
    assert (orders.code_dir, orders.import_path[-1]) == (app / "functions" / "orders", output / ORDERS_ASSET)
    assert discovery.functions["GeneratedFunction88BC45F2"].code_dir == output / GENERATED_ASSET
    assert not any("older than the source" in w for w in discovery.warnings)


def test_unknown_cdk_out_folder_is_named(app: Path) -> None:
    with pytest.raises(DiscoveryError) as error:
        discover(app / "template.yaml", cdk_out=Path("nowhere"))
    assert str(error.value) == (
        f"CDK app {app}: --cdk-out folder nowhere not found: pass the folder `cdk synth --output` "
        "writes (default cdk.out), or run `cdk synth --output nowhere`"
    )
