"""Functions the manager must skip (or restore with care) because of what Lambda refuses.

Each case runs the real manager on functions in moto, where the local cloud holds Lambda to
the AWS statement the case depends on (tests/harness/moto_lambda.py; sources in
docs/aws-limits.md):

* Managed Instances: "When you invoke a Lambda Managed Instances function using an
  unqualified ARN, Lambda implicitly invokes the $LATEST.PUBLISHED version rather than the
  unpublished $LATEST version" ($LATEST.PUBLISHED version in Lambda Managed Instances).
  The local cloud keeps ``CapacityProviderConfig``, which moto drops.
* Durable functions: "During replay, your function runs from the beginning and must follow
  the same execution path as the original run" (Best practices for Lambda durable
  functions). The local cloud keeps ``DurableConfig``.
* Environment size: Lambda refuses variables over 4 KB measured as their JSON text
  ("Lambda was unable to configure your environment variables because the environment
  variables you have provided exceeded the 4KB limit. String measured: {...}").
* Blocked runtimes: from a runtime's "Block function update" date (Runtime deprecation,
  Lambda runtimes table) updates of its functions are refused.
* Deleted layer versions "can no longer be viewed or added to functions" (DeleteLayerVersion);
  moto refuses an update that names one, also one the function already had.
"""

from __future__ import annotations

import datetime
import io
import json
import zipfile
from typing import Any

import boto3
import pytest

from plldb import naming
from plldb.lambdas import common
from plldb.lambdas.manager import entry as manager
from plldb.lambdas.manager import features
from plldb.lambdas.manager import plan as manager_plan
from tests.harness.gateway import Gateway
from tests.harness.gateway_setup import instrument_nonce, put_named_session

pytest_plugins = ["tests.harness.gateway_fixtures"]

PROVIDER = "arn:aws:lambda:us-east-1:123456789012:capacity-provider:fleet"


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _role() -> str:
    iam = boto3.client("iam")
    try:
        return iam.get_role(RoleName="features-role")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        trust = {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}
        return iam.create_role(
            RoleName="features-role", AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]


def _function(name: str, runtime: str = "python3.12", **extra: Any) -> str:
    boto3.client("lambda").create_function(
        FunctionName=name, Runtime=runtime, Role=_role(), Handler="app.handler",
        Code={"ZipFile": _zip({"app.py": "def handler(event, context):\n    return event\n"})},
        Timeout=3, **extra,
    )
    return name


def _by_name_session(names: list[str]) -> str:
    """An ACTIVE by-name session over ``names``, each claimed as `plldb attach` claims it."""
    return put_named_session(names, names)[1]


def _run(action: str, session_id: str) -> dict[str, Any]:
    """The manager invoked directly; an instrument run is armed as a ``$connect`` would."""
    event = {"action": action, "session_id": session_id, "connection_id": None}
    if action == "instrument":
        event["nonce"] = instrument_nonce(session_id)
    return manager.handler(event, None)


def _configuration(name: str) -> dict[str, Any]:
    config = boto3.client("lambda").get_function_configuration(FunctionName=name)
    return {k: config.get(k) for k in ("Environment", "Layers", "Timeout", "Runtime")}


def _skips(result: dict[str, Any]) -> dict[str, str]:
    return {s["function"]: s["reason"] for s in result["skipped"]}


def test_managed_instances_and_durable_functions_are_skipped_with_why(gateway: Gateway) -> None:
    managed = _function("managed", CapacityProviderConfig={
        "LambdaManagedInstancesCapacityProviderConfig": {"CapacityProviderArn": PROVIDER}})
    durable = _function("durable", runtime="python3.13", DurableConfig={"ExecutionTimeout": 3600})
    plain = _function("plain")
    before = {name: _configuration(name) for name in (managed, durable)}

    result = _run("instrument", _by_name_session([managed, durable, plain]))

    assert _skips(result) == {
        managed: f"runs on Lambda Managed Instances ({PROVIDER}): an unqualified invoke runs its "
        "$LATEST.PUBLISHED version, never the $LATEST plldb instruments, and its Python runtime "
        "serves requests from several processes, a loop the plldb shim would replace; debug a "
        "copy of the function without CapacityProviderConfig",
        durable: "durable function (DurableConfig): every replay of its durable executions "
        "would run this machine's code, edits included, and AWS warns that code which changes "
        "between replays breaks them; debug a copy of the function without DurableConfig",
    }
    assert result["instrumented"] == [plain]
    assert {name: _configuration(name) for name in (managed, durable)} == before


def _variables_the_old_count_missed(config: common.Config) -> dict[str, str]:
    """Short variables whose names and values, with plldb's, fit 4,096 bytes, while their
    JSON text (6 bytes more per variable: quotes, colon, comma) does not."""
    current = {"Environment": {}, "Layers": [], "Timeout": 3}
    for count in range(1, 1000):
        own = {f"V{i:03}": "x" for i in range(count)}
        env = manager_plan.applied({**current, "Environment": own}, config, "s" * 36, 900)[
            "Environment"
        ]
        names_and_values = sum(len(k) + len(v) for k, v in env.items())
        if manager_plan.environment_size(env) > 4096 >= names_and_values:
            return own
    raise AssertionError("no size between the two counts")


def test_the_environment_is_measured_as_lambda_measures_it(gateway: Gateway) -> None:
    own = _variables_the_old_count_missed(common.Config.from_environ())
    name = _function("near-limit", Environment={"Variables": own})
    before = _configuration(name)

    result = _run("instrument", _by_name_session([name]))

    (reason,) = _skips(result).values()
    assert reason.startswith("environment would be ")
    assert reason.endswith(
        " bytes with the plldb variables (as JSON text, as Lambda measures it), over the "
        "4096 byte limit"
    )
    assert result["failed"] == [] and _configuration(name) == before


def test_escapes_count_as_lambda_counts_them() -> None:
    assert manager_plan.environment_size({"A": "1"}) == len('{"A":"1"}')
    assert manager_plan.environment_size({"Q": 'say "hi"\n'}) == len('{"Q":"say \\"hi\\"\\n"}')
    assert manager_plan.environment_size({"E": "é"}) == len('{"E":"\\u00e9"}')


def test_a_blocked_runtime_is_skipped_with_its_date(gateway: Gateway) -> None:
    """Today (the run's date) python3.9 updates are blocked: nothing is attempted."""
    name = _function("old-runtime", runtime="python3.9")
    before = _configuration(name)

    result = _run("instrument", _by_name_session([name]))

    assert _skips(result) == {name: (
        "runtime python3.9 is deprecated and AWS blocks updates of its functions since "
        "2026-03-09: plldb could neither instrument nor restore it; move the function to a "
        "supported Python runtime (e.g. python3.13) to debug it"
    )}
    assert result["failed"] == [] and _configuration(name) == before


@pytest.mark.parametrize(
    ("runtime", "today", "blocked"),
    [
        ("python3.10", datetime.date(2027, 1, 14), False),
        ("python3.10", datetime.date(2027, 1, 15), True),
        ("python3.9", datetime.date(2026, 3, 8), False),
        ("python3.9", datetime.date(2026, 3, 9), True),
        ("python3.8", datetime.date(2020, 1, 1), True),  # blocked before the table was kept
        ("python3.12", datetime.date(2030, 1, 1), False),
    ],
)
def test_runtime_blocks_are_decided_by_the_date(
    runtime: str, today: datetime.date, blocked: bool
) -> None:
    configuration = {"PackageType": "Zip", "Runtime": runtime}
    reason = manager_plan.unsupported(configuration, today=today)
    assert (reason is not None) == blocked
    if blocked:
        assert reason and reason.startswith(f"runtime {runtime} is deprecated")


def test_a_block_within_the_session_is_a_warning() -> None:
    assert features.runtime_warning("python3.10", datetime.date(2027, 1, 14)) == (
        "AWS blocks updates of python3.10 functions from 2027-01-15: detach before then, or "
        "restoring this function will fail; move it to a supported Python runtime (e.g. "
        "python3.13)"
    )
    assert features.runtime_warning("python3.10", datetime.date(2027, 1, 10)) is None
    assert features.runtime_warning("python3.10", datetime.date(2027, 1, 15)) is None


def _layer(name: str) -> str:
    return boto3.client("lambda").publish_layer_version(
        LayerName=name, Content={"ZipFile": _zip({"python/dep.py": "X = 1\n"})},
        CompatibleRuntimes=["python3.12"],
    )["LayerVersionArn"]


def _delete(layer_arn: str) -> None:
    layer, _, version = layer_arn.rpartition(":")
    boto3.client("lambda").delete_layer_version(LayerName=layer, VersionNumber=int(version))


def test_a_deleted_layer_version_is_a_clear_skip(gateway: Gateway) -> None:
    layer = _layer("deps")
    name = _function("with-deleted-layer", Layers=[layer])
    _delete(layer)
    before = _configuration(name)

    result = _run("instrument", _by_name_session([name]))

    assert _skips(result) == {name: (
        f"its layer {layer} (the version was deleted) can no longer be added to a function, "
        "and every update re-sends all of a function's layers, so Lambda refuses it: deploy "
        "the function with a layer version that exists, then attach again"
    )}
    assert result["failed"] == [] and _configuration(name) == before


def test_a_layer_deleted_while_instrumented_still_lets_restore_remove_plldbs_traces(
    gateway: Gateway,
) -> None:
    layer = _layer("deps")
    name = _function("loses-its-layer", Layers=[layer], Environment={"Variables": {"A": "1"}})
    session_id = _by_name_session([name])
    assert _run("instrument", session_id)["instrumented"] == [name]
    _delete(layer)

    result = _run("deinstrument", session_id)

    assert result == {"restored": [name], "failed": []}
    after = _configuration(name)
    assert after["Environment"] == {"Variables": {"A": "1"}} and after["Timeout"] == 3
    # the layers could not be sent again: the plldb layer stays, inert without its variables
    assert [x["Arn"] for x in after["Layers"]] == [layer, gateway.settings.layer_arn]
    arn = boto3.client("lambda").get_function_configuration(FunctionName=name)["FunctionArn"]
    assert naming.CLAIM_TAG not in boto3.client("lambda").list_tags(Resource=arn)["Tags"]


def test_the_restore_warning_says_what_was_left_and_why() -> None:
    problems = (("arn:aws:lambda:us-east-1:123456789012:layer:deps:1", "the version was deleted"),)
    outcome = manager_plan.layers_left(
        manager_plan.Outcome("f", manager_plan.OK, "restored (timeout 3 s)"), problems
    )
    assert outcome == manager_plan.Outcome("f", manager_plan.WARNING, (
        "restored (timeout 3 s); but its layers are left as they were, the plldb layer "
        "included (inert: its variables are removed): its layer "
        "arn:aws:lambda:us-east-1:123456789012:layer:deps:1 (the version was deleted) can no "
        "longer be added to a function, and every update re-sends all of a function's "
        "layers, so Lambda refuses it: deploy the function with a layer version that exists, "
        "which also drops the plldb layer"
    ))
