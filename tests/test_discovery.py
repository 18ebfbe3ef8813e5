"""Discovery of local function code from SAM/CFN templates written to tmp_path."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from plldb.project.discovery import discover, project_found
from plldb.project.samconfig import parameter_overrides, stack_name_from_samconfig
from plldb.project.stack_mapping import collect_stack_resources, map_stack_functions
from plldb.project.templates import (
    DiscoveryError,
    NotATemplateError,
    TemplateNotFoundError,
    load_template,
)

LOCAL = f"python{sys.version_info[0]}.{sys.version_info[1]}"
pytestmark = pytest.mark.timeout(30)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


SAM_HEADER = "Transform: AWS::Serverless-2016-10-31\n"


def sam(body: str) -> str:
    return SAM_HEADER + textwrap.dedent(body)


@pytest.mark.parametrize(
    "template, files, expected",
    [
        pytest.param(
            f"""
            Globals:
              Function:
                Runtime: {LOCAL}
                Handler: app.lambda_handler
                CodeUri: src/
                Timeout: 10
            Resources:
              Hello:
                Type: AWS::Serverless::Function
              Other:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: other/
                  Handler: main.handle
                  Timeout: 30
            """,
            {"src/app.py": "", "other/main.py": ""},
            {"Hello": ("src", "app.lambda_handler", 10), "Other": ("other", "main.handle", 30)},
            id="globals",
        ),
        pytest.param(
            f"""
            Resources:
              Hello:
                Type: AWS::Serverless::Function
                Properties:
                  Runtime: {LOCAL}
                  Handler: app.handler
            """,
            {"app.py": ""},
            {"Hello": (".", "app.handler", None)},
            id="default-codeuri",
        ),
        pytest.param(
            f"""
            Resources:
              Hello:
                Type: AWS::Serverless::Function
                Properties:
                  Runtime: {LOCAL}
                  CodeUri: functions/hello
                  Handler: pkg/sub/app.handler
                  Environment:
                    Variables:
                      TABLE: !Ref Table
                      NAME: !Sub "${{AWS::StackName}}-x"
                      ARN: !GetAtt Table.Arn
              Table:
                Type: AWS::DynamoDB::Table
            """,
            {"functions/hello/pkg/sub/app.py": "", "functions/hello/pkg/__init__.py": ""},
            {"Hello": ("functions/hello", "pkg/sub/app.handler", None)},
            id="nested-folders-and-cfn-tags",
        ),
        pytest.param(
            f"""
            AWSTemplateFormatVersion: "2010-09-09"
            Resources:
              Plain:
                Type: AWS::Lambda::Function
                Properties:
                  Runtime: {LOCAL}
                  Handler: index.handler
                  Code: code
                  Role: !GetAtt Role.Arn
              Role:
                Type: AWS::IAM::Role
            """,
            {"code/index.py": ""},
            {"Plain": ("code", "index.handler", None)},
            id="plain-cfn",
        ),
    ],
)
def test_functions_are_found(tmp_path: Path, template: str, files: dict, expected: dict) -> None:
    write(tmp_path, {"template.yaml": sam(template), **files})
    found = discover(tmp_path / "template.yaml")
    assert set(found.functions) == set(expected)
    for logical_id, (code, handler, timeout) in expected.items():
        function = found.functions[logical_id]
        assert function.code_dir == (tmp_path / code).resolve()
        assert function.handler == handler
        assert function.timeout == timeout
        assert function.import_path[0] == function.code_dir
        assert function.runtime == LOCAL
    assert found.warnings == []


def test_cfn_tags_become_intrinsic_functions(tmp_path: Path) -> None:
    write(tmp_path, {"t.yaml": """
        Resources:
          X:
            Type: Foo
            Properties: {A: !Ref Y, B: !GetAtt Y.Arn, C: !Sub "a-${Y}", D: !Join [",", [a, b]], E: !If [C, 1, 2]}
        """})
    props = load_template(tmp_path / "t.yaml")["Resources"]["X"]["Properties"]
    assert props == {
        "A": {"Ref": "Y"},
        "B": {"Fn::GetAtt": ["Y", "Arn"]},
        "C": {"Fn::Sub": "a-${Y}"},
        "D": {"Fn::Join": [",", ["a", "b"]]},
        "E": {"Fn::If": ["C", 1, 2]},
    }


LAYERED = f"""
Globals:
  Function:
    Runtime: {LOCAL}
    Layers: [!Ref Shared]
Resources:
  Hello:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: hello/
      Handler: app.handler
      Layers:
        - !Ref Built
        - arn:aws:lambda:eu-west-1:123456789012:layer:powertools:3
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/shared
  Built:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layers/built
    Metadata:
      BuildMethod: {LOCAL}
"""


def test_local_layers_and_build_dir_order(tmp_path: Path) -> None:
    write(tmp_path, {
        "template.yaml": SAM_HEADER + LAYERED,
        "hello/app.py": "",
        "layers/shared/python/shared.py": "",
        "layers/built/helpers.py": "",
        ".aws-sam/build/Hello/requests/__init__.py": "",
        ".aws-sam/build/Built/python/helpers.py": "",
    })
    function = discover(tmp_path / "template.yaml").functions["Hello"]
    build = tmp_path / ".aws-sam" / "build"
    assert function.import_path == (
        (tmp_path / "hello").resolve(),
        (tmp_path / "layers/shared/python").resolve(),
        (tmp_path / "layers/built").resolve(),
        (build / "Hello").resolve(),
        (build / "Built/python").resolve(),
    )
    assert function.package_dirs == ((build / "Hello").resolve(), (build / "Built/python").resolve())
    assert function.remote_layers == ("arn:aws:lambda:eu-west-1:123456789012:layer:powertools:3",)


def test_built_template_maps_back_to_the_source(tmp_path: Path) -> None:
    write(tmp_path, {
        "template.yaml": sam(f"""
            Resources:
              Hello:
                Type: AWS::Serverless::Function
                Properties: {{Runtime: {LOCAL}, CodeUri: src/hello, Handler: app.handler}}
            """),
        "src/hello/app.py": "",
        ".aws-sam/build/template.yaml": sam(f"""
            Resources:
              Hello:
                Type: AWS::Serverless::Function
                Properties: {{Runtime: {LOCAL}, CodeUri: Hello, Handler: app.handler}}
            """),
        ".aws-sam/build/Hello/app.py": "",
        ".aws-sam/build.toml": '[function_build_definitions.x]\ncodeuri = "src/hello"\nfunctions = ["Hello"]\n',
    })
    found = discover(tmp_path / ".aws-sam/build/template.yaml")
    function = found.functions["Hello"]
    assert function.code_dir == (tmp_path / "src/hello").resolve()
    assert function.import_path[-1] == (tmp_path / ".aws-sam/build/Hello").resolve()
    assert found.warnings == []


def test_built_template_layers_map_to_their_recorded_sources(tmp_path: Path) -> None:
    """build.toml records layers too: the layer's source python/ is searched, the build copy
    only for its packages."""
    write(tmp_path, {
        ".aws-sam/build/template.yaml": SAM_HEADER + f"""
Resources:
  Hello:
    Type: AWS::Serverless::Function
    Properties: {{Runtime: {LOCAL}, CodeUri: Hello, Handler: app.handler, Layers: [!Ref Shared]}}
  Shared:
    Type: AWS::Serverless::LayerVersion
    Properties: {{ContentUri: Shared}}
""",
        ".aws-sam/build/Hello/app.py": "",
        ".aws-sam/build/Shared/python/shared.py": "",
        ".aws-sam/build.toml": (
            '[function_build_definitions.a]\ncodeuri = "src"\nfunctions = ["Hello"]\n'
            '[layer_build_definitions.b]\ncodeuri = "layer"\nlayer = "Shared"\n'
        ),
        "src/app.py": "",
        "layer/python/shared.py": "",
    })
    function = discover(tmp_path / ".aws-sam/build/template.yaml").functions["Hello"]
    build = (tmp_path / ".aws-sam/build").resolve()
    root = tmp_path.resolve()
    assert function.import_path == (root / "src", root / "layer/python", build / "Hello", build / "Shared/python")
    assert function.package_dirs == (build / "Hello", build / "Shared/python")


def test_built_template_alone_runs_the_build_copy_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, {
        ".aws-sam/build/template.yaml": sam(f"""
            Resources:
              Hello:
                Type: AWS::Serverless::Function
                Properties: {{Runtime: {LOCAL}, CodeUri: Hello, Handler: app.handler}}
            """),
        ".aws-sam/build/Hello/app.py": "",
    })
    found = discover(tmp_path / ".aws-sam/build/template.yaml")
    function = found.functions["Hello"]
    assert function.code_dir == (tmp_path / ".aws-sam/build/Hello").resolve()
    assert function.package_dirs == ()  # the executor imports source folders only
    assert "build.toml records no source folder for Hello; running the build copies" in found.warnings[0]


def test_non_python_image_and_inline_functions_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": sam(f"""
        Resources:
          Node: {{Type: AWS::Serverless::Function, Properties: {{Runtime: nodejs20.x, Handler: index.h}}}}
          Image: {{Type: AWS::Serverless::Function, Properties: {{PackageType: Image}}}}
          Inline: {{Type: AWS::Serverless::Function, Properties: {{Runtime: {LOCAL}, Handler: index.h, InlineCode: "x"}}}}
        """)})
    found = discover(tmp_path / "template.yaml")
    assert found.functions == {}
    assert found.skipped == {
        "Node": "runtime 'nodejs20.x' is not Python",
        "Image": "container image function",
        "Inline": "inline code",
    }


def test_nested_application_functions_are_prefixed(tmp_path: Path) -> None:
    write(tmp_path, {
        "template.yaml": sam("""
            Resources:
              App:
                Type: AWS::Serverless::Application
                Properties: {Location: child/template.yaml}
            """),
        "child/template.yaml": sam(f"""
            Resources:
              Fn: {{Type: AWS::Serverless::Function, Properties: {{Runtime: {LOCAL}, Handler: app.h, CodeUri: code}}}}
            """),
        "child/code/app.py": "",
    })
    found = discover(tmp_path / "template.yaml")
    assert found.functions["App/Fn"].code_dir == (tmp_path / "child/code").resolve()


def test_python_version_mismatch_is_a_returned_warning(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": sam("""
        Resources:
          Hello: {Type: AWS::Serverless::Function, Properties: {Runtime: python3.9, Handler: app.h}}
        """), "app.py": ""})
    found = discover(tmp_path / "template.yaml", python_version=(3, 11))
    assert found.warnings == [
        "function Hello: runtime python3.9 but plldb runs handlers on Python 3.11; version-specific "
        "behaviour may differ. plldb runs on Python 3.10 and newer, not 3.9; AWS blocks updates to "
        "python3.9 functions since 2026-03-09: upgrade the function's runtime (to python3.13) and "
        "test it with plldb"
    ]


@pytest.mark.parametrize(
    "files, error, message",
    [
        ({}, TemplateNotFoundError,
         "template {given} not found (looked in {root}): run plldb in the folder of your SAM project "
         "(cd there) or pass --template PATH"),
        ({"template.yaml": "- a\n- b\n"}, NotATemplateError, "is not a SAM/CloudFormation template (no Resources mapping)"),
        ({"template.yaml": "Outputs: {}\n"}, NotATemplateError, "no Resources mapping"),
        ({"template.yaml": "Resources: [\n"}, NotATemplateError, "is not valid YAML/JSON: expected the node content, but found '<stream end>' at line 2, column 1"),
    ],
)
def test_errors_name_the_file(tmp_path: Path, files: dict, error: type, message: str) -> None:
    write(tmp_path, files)
    with pytest.raises(error) as raised:
        discover(tmp_path / "template.yaml")
    expected = message.format(root=tmp_path.resolve(), given=tmp_path / "template.yaml")
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_properties_chosen_by_a_condition(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": f"""
        Parameters: {{Env: {{Type: String, Default: dev}}}}
        Conditions: {{Dev: !Equals [!Ref Env, dev]}}
        Resources:
          Fn:
            Type: AWS::Serverless::Function
            Properties: !If [Dev, {{Runtime: {LOCAL}, Handler: dev.h}}, {{Runtime: {LOCAL}, Handler: prod.h}}]
        """, "dev.py": ""})
    assert discover(tmp_path / "template.yaml").functions["Fn"].handler == "dev.h"


@pytest.mark.parametrize(
    "properties, files, reason",
    [
        pytest.param(
            f"{{Runtime: {LOCAL}, CodeUri: functions/hello, Handler: app.lambda_handler}}",
            {"functions/hello/other.py": ""},
            "handler app.lambda_handler -> {root}/functions/hello/app.py not found",
            id="handler-file",
        ),
        pytest.param(
            f"{{Runtime: {LOCAL}, CodeUri: nowhere, Handler: app.h}}", {},
            "code folder nowhere ({root}/nowhere) not found", id="code-folder",
        ),
        pytest.param(f"{{Runtime: {LOCAL}}}", {}, "no Handler in the template", id="no-handler"),
        pytest.param("{Runtime: !Ref Py, Handler: app.h}", {},
                     "Runtime !Ref Py: not a parameter of the template (a resource is only known in the deployed stack)",
                     id="runtime-unresolved"),
        pytest.param("[a, b]", {}, "Properties [a, b] is not a mapping", id="properties-list"),
        pytest.param("!If [Nowhere, {}, {}]", {}, "Properties !If [Nowhere, {{}}, {{}}]: condition Nowhere is not defined in the template",
                     id="properties-if-unknown"),
    ],
)
def test_a_broken_function_is_skipped_with_its_reason(tmp_path: Path, properties: str, files: dict, reason: str) -> None:
    """One function the template gets wrong never hides the others."""
    write(tmp_path, {
        "template.yaml": f"Resources:\n  Broken:\n    Type: AWS::Serverless::Function\n    Properties: {properties}\n"
                         f"  Fine:\n    Type: AWS::Serverless::Function\n    Properties: {{Runtime: {LOCAL}, Handler: ok.h}}\n",
        "ok.py": "",
        **files,
    })
    found = discover(tmp_path / "template.yaml")
    assert list(found.functions) == ["Fine"]
    assert found.skipped == {"Broken": reason.format(root=tmp_path.resolve().as_posix())}


def _stack_resources() -> list[dict]:
    return [
        {"LogicalResourceId": "Hello", "PhysicalResourceId": "stack-Hello-ABC", "ResourceType": "AWS::Lambda::Function"},
        {"LogicalResourceId": "HelloRole", "PhysicalResourceId": "stack-HelloRole-1", "ResourceType": "AWS::IAM::Role"},
        {"LogicalResourceId": "Node", "PhysicalResourceId": "stack-Node-1", "ResourceType": "AWS::Lambda::Function"},
    ]


def test_stack_functions_are_keyed_by_physical_name(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": sam(f"""
        Resources:
          Hello: {{Type: AWS::Serverless::Function, Properties: {{Runtime: {LOCAL}, Handler: app.h}}}}
          Node: {{Type: AWS::Serverless::Function, Properties: {{Runtime: nodejs20.x, Handler: app.h}}}}
        """), "app.py": ""})
    mapping = map_stack_functions(discover(tmp_path / "template.yaml"), _stack_resources())
    assert list(mapping.functions) == ["stack-Hello-ABC"]
    assert mapping.functions["stack-Hello-ABC"].logical_id == "Hello"
    assert mapping.functions["stack-Hello-ABC"].physical_name == "stack-Hello-ABC"
    assert mapping.skipped == {"stack-Node-1": "runtime 'nodejs20.x' is not Python"}


def test_stack_function_missing_from_template_is_skipped_with_a_hint(tmp_path: Path) -> None:
    """Issue 12 B4: a function the template lacks is a warning, never an abort."""
    write(tmp_path, {"template.yaml": sam(f"""
        Resources:
          Hello: {{Type: AWS::Serverless::Function, Properties: {{Runtime: {LOCAL}, Handler: app.h}}}}
        """), "app.py": ""})
    mapping = map_stack_functions(discover(tmp_path / "template.yaml"), _stack_resources())
    assert list(mapping.functions) == ["stack-Hello-ABC"]
    assert mapping.skipped == {
        "stack-Node-1": f"function Node has no match in {(tmp_path / 'template.yaml').resolve()}: if the stack "
        "was deployed from another project folder, run plldb there or pass --template PATH"
    }


def test_nested_stack_resources_are_prefixed() -> None:
    stacks = {
        "parent": [
            {"LogicalResourceId": "App", "PhysicalResourceId": "arn:child", "ResourceType": "AWS::CloudFormation::Stack"},
            {"LogicalResourceId": "Top", "PhysicalResourceId": "top-fn", "ResourceType": "AWS::Lambda::Function"},
        ],
        "arn:child": [{"LogicalResourceId": "Fn", "PhysicalResourceId": "child-fn", "ResourceType": "AWS::Lambda::Function"}],
    }
    collected = collect_stack_resources(stacks.__getitem__, "parent")
    assert [(r["LogicalResourceId"], r["PhysicalResourceId"]) for r in collected] == [
        ("App", "arn:child"), ("App/Fn", "child-fn"), ("Top", "top-fn")
    ]


@pytest.mark.parametrize("name, text", [
    ("samconfig.toml", 'version = 0.1\n[default.deploy.parameters]\nstack_name = "my-stack"  # c\nregion = "eu-west-1"\n'),
    ("samconfig.toml", 'version = 0.1\n[default.global.parameters]\nstack_name = "my-stack"\n'),
    ("samconfig.yaml", "version: 0.1\ndefault:\n  deploy:\n    parameters:\n      stack_name: my-stack\n"),
])
def test_stack_name_from_samconfig(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    assert stack_name_from_samconfig(tmp_path) == "my-stack"


def test_samconfig_absent_or_without_stack_name(tmp_path: Path) -> None:
    assert stack_name_from_samconfig(tmp_path) is None
    (tmp_path / "samconfig.toml").write_text('[prod.deploy.parameters]\nstack_name = "p"\n')
    assert stack_name_from_samconfig(tmp_path) is None
    assert stack_name_from_samconfig(tmp_path, environment="prod") == "p"


def test_samconfig_is_read_as_full_toml(tmp_path: Path) -> None:
    """Multi-line arrays and inline tables, which samconfig files written by hand use (the
    hand-written reader plldb had for Python 3.10 read neither)."""
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.deploy.parameters]\nstack_name = "a\\"b"  # c\n'
        'parameter_overrides = [\n  "A=1",\n  "B=x y",\n]\ntags = { team = "t" }\n'
    )
    assert stack_name_from_samconfig(tmp_path) == 'a"b'
    assert parameter_overrides(tmp_path) == {"A": "1", "B": "x y"}


def test_broken_samconfig_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "samconfig.toml").write_text("[default.deploy\n")
    with pytest.raises(DiscoveryError, match="samconfig.toml cannot be parsed"):
        stack_name_from_samconfig(tmp_path)


TEST_STACK = Path(__file__).parent / "test_stack"


def test_the_test_stack_is_discovered() -> None:
    found = discover(TEST_STACK / "template.yaml")
    assert set(found.functions) == {"HelloFunction", "EchoFunction"}
    hello = found.functions["HelloFunction"]
    assert hello.code_dir == (TEST_STACK / "functions/hello").resolve()
    assert hello.import_path[:2] == (hello.code_dir, (TEST_STACK / "layers/common/python").resolve())
    assert (hello.handler, hello.runtime, hello.timeout, hello.memory_size) == ("app.handler", "python3.11", 10, 128)
    assert hello.environment == {"GREETING": "hello-from-env"}
    assert found.functions["EchoFunction"].import_path[0] == (TEST_STACK / "functions/echo").resolve()
    assert stack_name_from_samconfig(TEST_STACK) == "plldb-test-stack"


RESOLVER_TEMPLATE = {
    "Parameters": {
        "Env": {"Type": "String", "Default": "dev"},
        "Names": {"Type": "CommaDelimitedList", "Default": "a, b"},
        "Memory": {"Type": "Number", "Default": "512"},
        "Secret": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/app/secret"},
        "Required": {"Type": "String"},
    },
    "Conditions": {"Dev": {"Fn::Equals": [{"Ref": "Env"}, "dev"]}},
    "Mappings": {"Sizes": {"dev": {"Memory": 256}}},
    "Resources": {},
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"Ref": "Env"}, "dev"),
        ({"Ref": "Names"}, ["a", "b"]),
        ({"Ref": "Memory"}, 512),
        ({"Ref": "Required"}, "given"),  # from overrides
        ({"Fn::Sub": "fn-${Env}-${!Literal}"}, "fn-dev-${Literal}"),
        ({"Fn::Sub": ["${Prefix}/${Env}", {"Prefix": {"Fn::Join": ["-", ["x", "y"]]}}]}, "x-y/dev"),
        ({"Fn::If": ["Dev", "arm64", "x86_64"]}, "arm64"),
        ({"Fn::If": ["Dev", {"Ref": "AWS::NoValue"}, 1]}, None),
        ({"Fn::Not": [{"Condition": "Dev"}]}, False),
        ({"Fn::Or": [{"Fn::And": [{"Condition": "Dev"}, {"Fn::Equals": ["a", "b"]}]}, {"Condition": "Dev"}]}, True),
        ({"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "Memory"]}, 256),
        ({"Fn::Select": [1, {"Ref": "Names"}]}, "b"),
        ({"Fn::Split": [",", "p,q"]}, ["p", "q"]),
        ({"Variables": {"A": {"Ref": "Env"}}}, {"Variables": {"A": "dev"}}),
    ],
)
def test_intrinsics_resolve_from_parameters(expression: object, expected: object) -> None:
    from plldb.project.templates import Resolver, parameter_values

    resolver = Resolver(RESOLVER_TEMPLATE, parameter_values(RESOLVER_TEMPLATE, {"Required": "given"}))
    assert resolver.resolve(expression) == expected


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ({"Ref": "AWS::Region"}, "!Ref AWS::Region is only known in the deployed stack"),
        ({"Ref": "Table"}, "!Ref Table: not a parameter of the template (a resource is only known in the deployed stack)"),
        ({"Ref": "Secret"}, "!Ref Secret: the parameter's value is read from SSM at deploy time"),
        ({"Ref": "Required"}, "!Ref Required: the parameter has no Default and samconfig's parameter_overrides does not set it"),
        ({"Fn::GetAtt": ["Table", "Arn"]}, "!GetAtt needs the deployed stack"),
        ({"Fn::Sub": "${Table.Arn}"}, "${Table.Arn} in !Sub needs the deployed stack"),
        ({"Fn::If": ["Prod", 1, 2]}, "condition Prod is not defined in the template"),
        ({"Fn::FindInMap": ["Sizes", "prod", "Memory"]}, "!FindInMap [Sizes, prod, Memory] is not in Mappings"),
    ],
)
def test_unresolvable_intrinsics_say_why(expression: object, reason: str) -> None:
    from plldb.project.templates import Resolver, Unresolved, parameter_values

    resolver = Resolver(RESOLVER_TEMPLATE, parameter_values(RESOLVER_TEMPLATE, {}))
    with pytest.raises(Unresolved) as raised:
        resolver.resolve(expression)
    assert str(raised.value) == reason


def test_foreach_over_an_unknown_collection_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, {"template.yaml": sam(f"""
        Resources:
          Fn::ForEach::Loop:
            - Name
            - !GetAtt Config.Names
            - ${{Name}}Fn: {{Type: AWS::Serverless::Function, Properties: {{Runtime: {LOCAL}, Handler: app.h}}}}
          Kept: {{Type: AWS::Serverless::Function, Properties: {{Runtime: {LOCAL}, Handler: app.h}}}}
        """), "app.py": ""})
    found = discover(tmp_path / "template.yaml")
    assert list(found.functions) == ["Kept"]
    assert found.warnings == ["template.yaml: Fn::ForEach::Loop: !GetAtt needs the deployed stack"]


def test_nested_application_gets_the_parameters_its_parent_passes(tmp_path: Path) -> None:
    write(tmp_path, {
        "template.yaml": sam("""
            Parameters: {Flavour: {Type: String, Default: blue}}
            Resources:
              App:
                Type: AWS::Serverless::Application
                Properties:
                  Location: child/template.yaml
                  Parameters: {Folder: !Ref Flavour, Unknown: !GetAtt X.Y}
            """),
        "child/template.yaml": sam(f"""
            Parameters: {{Folder: {{Type: String, Default: red}}, Unknown: {{Type: String, Default: u}}}}
            Resources:
              Fn: {{Type: AWS::Serverless::Function, Properties: {{Runtime: {LOCAL}, Handler: app.h, CodeUri: !Ref Folder}}}}
            """),
        "child/blue/app.py": "",
    })
    assert discover(tmp_path / "template.yaml").functions["App/Fn"].code_dir == (tmp_path / "child/blue").resolve()


def test_templates_load_as_plain_dicts_after_the_sam_cli_changed_safeloader(tmp_path: Path) -> None:
    """samcli's yamlhelper makes yaml.SafeLoader build OrderedDicts for the whole process;
    discovery's own loader must not follow (its reasons are dumped back as YAML)."""
    import yaml
    from samcli import yamlhelper

    before = dict(yaml.SafeLoader.yaml_constructors)
    try:
        yamlhelper.yaml_parse("a: 1")  # registers its OrderedDict constructor on SafeLoader
        write(tmp_path, {"template.yaml": "Resources:\n  Broken:\n    Type: AWS::Serverless::Function\n"
                                          "    Properties: !If [Nowhere, {}, {}]\n"})
        found = discover(tmp_path / "template.yaml")
        assert type(load_template(tmp_path / "template.yaml")["Resources"]) is dict
        assert found.skipped["Broken"].startswith("Properties !If [Nowhere, {}, {}]")
    finally:
        yaml.SafeLoader.yaml_constructors = before


def test_sam_stack_name_and_files_read_come_from_samconfig(tmp_path: Path) -> None:
    """A SAM project names its stack as CDK apps and Serverless services do: in Discovery."""
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    bare = discover(tmp_path / "template.yaml")
    assert (bare.stack_name, bare.files_read) == (None, [tmp_path / "template.yaml"])
    (tmp_path / "samconfig.toml").write_text('[default.deploy.parameters]\nstack_name = "shop"\n')
    discovery = discover(tmp_path / "template.yaml")
    assert discovery.stack_name == "shop"
    assert discovery.files_read == [tmp_path / "template.yaml", tmp_path / "samconfig.toml"]


def test_project_found_for_a_template_or_a_cdk_or_serverless_folder(tmp_path: Path) -> None:
    """attach keeps captures only for a project discovery can read (else it reports the
    missing template and writes nothing)."""
    assert not project_found(tmp_path / "template.yaml")
    (tmp_path / "serverless.yml").write_text("service: s\n")
    assert project_found(tmp_path / "template.yaml")
    (tmp_path / "serverless.yml").rename(tmp_path / "cdk.json")
    assert project_found(tmp_path / "template.yaml")
    (tmp_path / "cdk.json").rename(tmp_path / "template.yaml")
    assert project_found(tmp_path / "template.yaml")
