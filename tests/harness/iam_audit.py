"""The call audit: every AWS call recorded in moto, checked against its principal's policies.

moto enforces IAM on actions only; this checks each recorded call (see
tests/harness/call_recorder.py) with its resource ARN and condition context, using
tests/harness/iam_policy.py. Whose policies:

* a role of the helper stack (``plldb``): the role's inline policies, attached managed
  policies and ``AWS::IAM::Policy`` resources in plldb/infra/template.yaml expanded by the
  SAM translator, with the deployed stack's values (parameters, table names, the layer's
  ARN, the local API id) substituted: the template is what is being tested, not moto's copy;
* IAM users holding the documented policy, docs/iam/plldb-developer-policy.json, narrowed to
  their functions as the README says (tests/harness/developer_policy.py): that document;
* any other role (the debugged functions' roles, with the shim's policy the manager puts
  on them): the policies moto held for it at the time of the call;
* the harness's own fake credentials (set-up and assertions of the tests): exempt, counted;
* credentials moto does not know: a violation.

``python -m tests.harness.iam_audit DIR`` prints the report for a folder of records.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plldb import naming
from tests.harness import developer_policy as developer_policies
from tests.harness import iam_policy
from tests.harness.call_recorder import ENV_RECORD_DIR, HARNESS
from tests.harness.localcloud_stacks import LOCAL_API_ID, helper_template, translate_sam

DEVELOPER_POLICY = developer_policies.SHIPPED
ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}  # AWS: no permission is needed


@dataclass(frozen=True)
class Violation:
    """A call the principal's policies do not allow (or that could not be audited)."""

    principal: str
    action: str
    resource: str
    reason: str
    request: str
    time: float = field(default=0.0, compare=False)  # first seen (epoch seconds)
    tests: tuple[str, ...] = field(default=(), compare=False)  # running at that time

    def __str__(self) -> str:
        when = datetime.datetime.fromtimestamp(self.time, datetime.timezone.utc).strftime(
            "%H:%M:%S"
        )
        during = f" during {', '.join(self.tests)}" if self.tests else ""
        return (
            f"{self.principal}: {self.action} on {self.resource}: {self.reason} "
            f"({self.request} at {when} UTC{during})"
        )


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    audited: Counter[str] = field(default_factory=Counter)  # distinct calls per principal
    out_of_scope: Counter[str] = field(default_factory=Counter)  # not plldb's principals
    exempt: int = 0  # calls made with the harness's credentials
    expected: list[Violation] = field(default_factory=list)  # refusals a test provoked

    def add(self, violation: Violation) -> None:
        if violation not in self.violations:
            self.violations.append(violation)

    def set_aside(self, expectations: list[dict[str, str]]) -> None:
        """Move the violations a test declared with :func:`expect_refusal` to ``expected``."""
        for violation in list(self.violations):
            if any(_expected(e, violation) for e in expectations):
                self.violations.remove(violation)
                self.expected.append(violation)

    def text(self) -> str:
        lines = [
            f"call audit: {sum(self.audited.values())} distinct calls of "
            f"{len(self.audited)} principals checked, {len(self.violations)} not allowed; "
            f"{self.exempt} harness calls exempt, {sum(self.out_of_scope.values())} calls of "
            f"{len(self.out_of_scope)} principals that are not plldb's not checked; "
            f"{len(self.expected)} refusals provoked on purpose"
        ]
        lines += [f"  NOT ALLOWED {v}" for v in self.violations]
        return "\n".join(lines)


@dataclass
class _Records:
    """The lines of the record files, by type (principals are looked up across files)."""

    principals: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    latest_policies: dict[str, str] = field(default_factory=dict)  # key -> digest
    calls: list[dict[str, Any]] = field(default_factory=list)
    unmapped: list[dict[str, Any]] = field(default_factory=list)


def load(*paths: Path) -> _Records:
    records = _Records()
    for path in paths:
        for line in path.read_text().splitlines():
            item = json.loads(line)
            if item["type"] == "principal":
                records.principals[item["key"]] = item
            elif item["type"] == "policies":
                records.policies[item["digest"]] = item["documents"]
            elif item["type"] == "call":
                records.calls.append(item)
                if item["policies"]:
                    records.latest_policies[item["key"]] = item["policies"]
            else:
                records.unmapped.append(item)
    return records


def audit(directory: Path, developer_policy: Path = DEVELOPER_POLICY) -> Report:
    """Check every record file in ``directory``."""
    report = Report()
    _audit_records(load(*sorted(directory.glob("calls-*.jsonl"))), developer_policy, report)
    tests = _lines(directory, "tests-*.jsonl")
    report.violations = [
        dataclasses.replace(v, tests=_running(tests, v.time)) for v in report.violations
    ]
    report.set_aside(_lines(directory, "expected-*.jsonl"))
    return report


def _lines(directory: Path, pattern: str) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(directory.glob(pattern))
        for line in path.read_text().splitlines()
    ]


def record_test(directory: Path, nodeid: str, start: float, end: float) -> None:
    """Note when a test ran (the test process calls it), to name it next to a violation."""
    line = {"test": nodeid, "start": start, "end": end}
    with (directory / f"tests-{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


def _running(tests: list[dict[str, Any]], when: float) -> tuple[str, ...]:
    return tuple(t["test"] for t in tests if t["start"] <= when <= t["end"])


def expect_refusal(action: str, principal: str, resource: str = "*", *, why: str) -> None:
    """Declare calls a test makes on purpose although they are not allowed.

    For tests that provoke a refusal (e.g. a function role used before the manager's policy
    reaches it): matching violations (``*``/``?`` wildcards) first made while the declaring
    test ran are listed as provoked, not failures. ``why`` says what the test exercises.
    """
    folder = Path(os.environ[ENV_RECORD_DIR])
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]  # pytest sets it
    line = {"action": action, "principal": principal, "resource": resource, "why": why}
    line["test"] = test
    with (folder / f"expected-{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


def _expected(expectation: dict[str, str], violation: Violation) -> bool:
    """The violation matches the patterns and happened during the declaring test."""
    return (not expectation.get("test") or expectation["test"] in violation.tests) and all(
        iam_policy.wildcard(expectation[name], getattr(violation, name))
        for name in ("action", "principal", "resource")
    )


def _principal(records: _Records, key: str) -> dict[str, Any]:
    """Who used ``key``, as the moto process that saw it recorded (emulators record keys only)."""
    return records.principals.get(key, {"kind": "unknown", "arn": f"unknown access key {key!r}"})


def _audit_records(records: _Records, developer_policy: Path, report: Report) -> None:
    unmapped = [
        {
            **item,
            "action": "?",
            "resource": "?",
            "context": {},
            "policies": None,
            "error": f"the recorder could not derive action and resource: {item['error']}",
        }
        for item in records.unmapped
    ]
    for call in [*records.calls, *unmapped]:
        principal = _principal(records, call["key"])
        if principal["kind"] == HARNESS:
            report.exempt += 1
            continue
        if call["policies"] is None:  # an emulator's or unmapped: moto's latest view of the key
            call = {
                **call,
                "policies": records.latest_policies.get(call["key"]),
                "context": {"aws:PrincipalArn": principal["arn"], **call["context"]},
            }
        snapshot = records.policies.get(call["policies"] or "", [])
        try:
            policies = policies_of(principal, snapshot, developer_policy)
            reason = None if policies is None else call.get("error") or _refusal(policies, call)
        except (iam_policy.PolicyError, LookupError) as exc:
            policies, reason = [], f"cannot be audited: {exc}"
        if policies is None:
            report.out_of_scope[principal["arn"]] += 1
            continue
        report.audited[principal["arn"]] += 1
        if reason:
            action, resource = call["action"], call["resource"]
            request, when = call["request"], call.get("time", 0.0)
            report.add(Violation(principal["arn"], action, resource, reason, request, when))


def _refusal(policies: list[dict[str, Any]], call: dict[str, Any]) -> str | None:
    """Why the policies do not allow the call, or None."""
    if call["action"] in ALWAYS_ALLOWED:
        return None
    request = iam_policy.Request(call["action"], call["resource"], call["context"])
    outcome = iam_policy.evaluate(policies, request)
    return None if outcome.allowed else outcome.decision.value


def policies_of(
    principal: dict[str, Any], snapshot: list[dict[str, Any]], developer_policy: Path
) -> list[dict[str, Any]] | None:
    """The policies the audit holds the principal to; None: not plldb's (out of scope).

    In scope: roles created by a CloudFormation stack (the helper stack's from the template,
    others as moto holds them) and IAM users holding the documented developer policy. Roles
    and users that tests create by hand to provoke refusals are not plldb's principals.
    """
    if principal["kind"] == "user":
        if not developer_policy.exists():
            raise LookupError(f"the documented developer policy {developer_policy} is missing")
        held = [p for p in snapshot if developer_policies.is_narrowed(p, developer_policy)]
        return held[:1] or None
    if principal["kind"] != "role":
        raise LookupError(f"credentials moto does not know ({principal['arn']})")
    stack = principal.get("stack")
    if not stack:
        return None
    if stack["name"] == naming.HELPER_STACK_NAME:
        return helper_role_policies(stack, principal["logical_id"])
    return snapshot


# --------------------------------------------------------------------------- helper template


@functools.cache
def _expanded_template(region: str) -> dict[str, Any]:
    return translate_sam(helper_template(), region)


def helper_role_policies(stack: dict[str, Any], role: str) -> list[dict[str, Any]]:
    """The policy documents the expanded helper template gives ``role``, values resolved."""
    template = _expanded_template(stack["region"])
    resources = template["Resources"]
    if resources.get(role, {}).get("Type") != "AWS::IAM::Role":
        raise LookupError(f"{role} is not a role of the helper template")
    props = resources[role]["Properties"]
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
    for arn in props.get("ManagedPolicyArns", []):
        logical = arn.get("Ref") if isinstance(arn, dict) else None
        if resources.get(logical, {}).get("Type") != "AWS::IAM::ManagedPolicy":
            raise LookupError(f"{role}: managed policy {arn} is not defined in the template")
        documents.append(resources[logical]["Properties"]["PolicyDocument"])
    documents += [
        r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"].get("Roles", [])
    ]
    return _Resolver(template, stack).resolve(documents)


_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
_ARN_FORMATS = {
    "AWS::DynamoDB::Table": "arn:{partition}:dynamodb:{region}:{account}:table/{name}",
    "AWS::IAM::Role": "arn:{partition}:iam::{account}:role/{name}",
    "AWS::Lambda::Function": "arn:{partition}:lambda:{region}:{account}:function:{name}",
}


class _Resolver:
    """CloudFormation's intrinsic functions over a deployed stack's values."""

    def __init__(self, template: dict[str, Any], stack: dict[str, Any]) -> None:
        self.template = template
        self.stack = stack
        _, partition, _, region, account, _ = stack["id"].split(":", 5)
        self.names = {"partition": partition, "region": region, "account": account}
        self.pseudo = {
            "AWS::Partition": partition,
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::StackName": stack["name"],
            "AWS::StackId": stack["id"],
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return self.ref(node["Ref"])
        if set(node) == {"Fn::GetAtt"}:
            name, attribute = node["Fn::GetAtt"]
            return self.get_att(name, attribute)
        if set(node) == {"Fn::Sub"}:
            return self.sub(node["Fn::Sub"])
        return {key: self.resolve(value) for key, value in node.items()}

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.stack["parameters"]:
            return str(self.stack["parameters"][name])
        if name in self.stack["resources"]:
            return self.stack["resources"][name][1]
        kind = self.template["Resources"].get(name, {}).get("Type")
        if kind == "AWS::ApiGatewayV2::Api":  # the gateway emulator (localcloud_stacks)
            return LOCAL_API_ID
        for key, output in self.template.get("Outputs", {}).items():
            if output["Value"] == {"Ref": name} and key in self.stack["outputs"]:
                return self.stack["outputs"][key]  # e.g. a layer published outside the stack
        raise LookupError(f"cannot resolve Ref {name} in stack {self.stack['name']}")

    def get_att(self, name: str, attribute: str) -> str:
        kind = self.template["Resources"].get(name, {}).get("Type")
        if attribute != "Arn" or kind not in _ARN_FORMATS:
            raise LookupError(f"cannot resolve Fn::GetAtt {name}.{attribute} ({kind})")
        return _ARN_FORMATS[kind].format(name=self.ref(name), **self.names)

    def sub(self, value: str | list[Any]) -> str:
        text, variables = (value, {}) if isinstance(value, str) else value

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and name not in self.pseudo:
                resource, attribute = name.split(".", 1)
                return self.get_att(resource, attribute)
            return self.ref(name)

        return _SUB_VARIABLE.sub(replace, text).replace("${!", "${")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Audit recorded AWS calls against IAM policies.")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    report = audit(args.directory)
    print(report.text())
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
