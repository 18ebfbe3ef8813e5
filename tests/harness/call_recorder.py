"""Record, inside the moto server process, every AWS call: who, which IAM action, on what.

moto's IAM enforcement checks actions only. The call audit (tests/harness/iam_audit.py)
checks resources and conditions too, from what this module writes: for every request that
reaches moto's authorisation step (every signed AWS API call), one JSON line per
(action, resource ARN) with the condition context, and once per access key who it is.

Switched on by :func:`install`, which the moto launcher calls once in the moto server
process; it does nothing unless ``PLLDB_CALL_RECORD_DIR`` names a folder, where each moto
process writes ``calls-<pid>.jsonl``. Lines (``type``):

* ``principal``: ``key`` (access key id), ``kind`` (``role``, ``user``, ``harness`` for the
  harness's fixed fake credentials, ``unknown``), ``arn``; for a role created by a
  CloudFormation stack, ``stack`` (name, region, parameters, outputs, resources) and
  ``logical_id``;
* ``policies``: the identity policies moto holds for a principal (``digest``, ``documents``);
* ``call``: ``key``, ``action`` (``service:Action``), ``resource``, ``context``, ``policies``
  (digest at the time of the call), ``request`` (method and path, for the report);
* ``unmapped``: a request whose action or resource this module cannot derive (the audit
  fails the run on it for a real principal, so that a new call is never audited as ``*``).

Identical lines are written once, with the time first seen (``time``, epoch seconds).
Recording never changes moto's answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from tests.harness import execution_egress
from tests.harness.call_resources import derive

ENV_RECORD_DIR = "PLLDB_CALL_RECORD_DIR"
HARNESS_ACCESS_KEY = "testing"  # tests/harness/moto_server.py's FAKE_CREDENTIALS
HARNESS = "harness"

_installed = False
_install_lock = threading.Lock()


def install() -> bool:
    """Hook moto's authorisation step (once per process); False when recording is off."""
    global _installed
    with _install_lock:
        if _installed:
            return True
        directory = os.environ.get(ENV_RECORD_DIR)
        if not directory:
            return False
        from moto.core.authorization import ActionAuthenticatorMixin

        recorder = Recorder(Path(directory) / f"calls-{os.getpid()}.jsonl")
        original = ActionAuthenticatorMixin._authenticate_and_authorize_action

        def recording(self: Any, iam_request_cls: type, resource: str = "*") -> None:
            recorder.record(self, resource)
            original(self, iam_request_cls, resource)

        ActionAuthenticatorMixin._authenticate_and_authorize_action = recording  # type: ignore[method-assign]
        _installed = True
        return True


_emulator_recorders: dict[str, Recorder] = {}  # by record folder


def record_call(authorization: str, action: str, resource: str, request: str) -> None:
    """Record a call that an emulator serves instead of moto (call it in that emulator).

    The gateway emulator's ``@connections`` (``execute-api:ManageConnections``) and the
    Lambda front's ``Invoke`` of helper Lambdas never reach moto. ``authorization`` is the
    request's SigV4 ``Authorization`` header: the audit finds the principal from the access
    key that moto's records name. Does nothing unless recording is on.
    """
    directory = os.environ.get(ENV_RECORD_DIR)
    if not directory:
        return
    with _install_lock:
        if directory not in _emulator_recorders:
            path = Path(directory) / f"calls-{os.getpid()}.jsonl"
            _emulator_recorders[directory] = Recorder(path)
    credential = credential_of(authorization)
    line = {
        "type": "call",
        "key": credential[0] if credential else "",
        "action": action,
        "resource": resource,
        "context": {},
        "policies": None,  # the audit uses the latest policies moto recorded for the key
        "request": request,
    }
    _emulator_recorders[directory].write(line)


class Recorder:
    """Writes the lines described in the module docstring; thread-safe, de-duplicated."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._principals: dict[str, dict[str, Any]] = {}

    def record(self, handler: Any, moto_resource: str) -> None:
        """Everything moto is about to authorise; a failure to derive is itself recorded."""
        credential = credential_of(handler.headers.get("Authorization", ""))
        key = credential[0] if credential else ""
        service = credential[3] if credential else "unsigned"
        request = f"{handler.method} {handler.path}"
        try:
            principal = self._principal(handler, key)
            digest = self._policies(handler, principal)
            for action, resource, extra in derive(handler, service, moto_resource):
                context = {
                    **global_context(handler, principal),
                    **execution_egress.condition_context(handler.headers, principal),
                    **extra,
                }
                self.write(
                    {
                        "type": "call",
                        "key": key,
                        "action": action,
                        "resource": resource,
                        "context": context,
                        "policies": digest,
                        "request": request,
                    }
                )
        except Exception as exc:  # noqa: BLE001 - reported by the audit, never to moto's caller
            self.write({"type": "unmapped", "key": key, "request": request, "error": repr(exc)})

    def _principal(self, handler: Any, key: str) -> dict[str, Any]:
        if key not in self._principals:
            principal = {"type": "principal", "key": key, **identify(handler, key)}
            self._principals[key] = principal
            self.write(principal)
        return self._principals[key]

    def _policies(self, handler: Any, principal: dict[str, Any]) -> str | None:
        """The principal's identity policies as moto holds them now (roles change at attach)."""
        if principal["kind"] not in ("role", "user"):
            return None
        documents = moto_policies(handler, principal)
        text = json.dumps(documents, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        self.write({"type": "policies", "digest": digest, "documents": documents})
        return digest

    def write(self, line: dict[str, Any]) -> None:
        """Append ``line`` with the time it was first seen (to find the test in the logs)."""
        text = json.dumps(line, sort_keys=True)
        with self._lock:
            if text in self._seen:
                return
            self._seen.add(text)
            with self.path.open("a") as out:
                out.write(json.dumps({**line, "time": round(time.time(), 3)}) + "\n")


def credential_of(authorization: str) -> list[str] | None:
    """SigV4's ``Credential=KEY/DATE/REGION/SERVICE/aws4_request`` as its parts."""
    match = re.search(r"Credential=([^,\s]+)", authorization)
    return match.group(1).split("/") if match else None


# --------------------------------------------------------------------------- principals


def identify(handler: Any, key: str) -> dict[str, Any]:
    """Who holds ``key``: an assumed role, an IAM user, the harness, or nobody moto knows."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    account, partition = handler.current_account, handler.partition
    assumed = sts_backends[account][partition].get_assumed_role_from_access_key(key)
    if assumed is not None:
        return {
            "kind": "role",
            "arn": assumed.role_arn,
            "session_arn": assumed.arn,
            "user_id": assumed.user_id,  # aws:userid: "<role id>:<session name>"
            **_stack_of_role(handler, assumed.role_arn.rsplit("/", 1)[-1]),
        }
    user = iam_backends[account][partition].get_user_from_access_key_id(key)
    if user is not None:
        return {"kind": "user", "arn": user.arn, "name": user.name}
    if key == HARNESS_ACCESS_KEY:
        return {"kind": HARNESS, "arn": HARNESS}
    return {"kind": "unknown", "arn": f"unknown access key {key!r}"}


def _stack_of_role(handler: Any, role_name: str) -> dict[str, Any]:
    """The CloudFormation stack (and logical id) that created the role, if one did."""
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends[handler.current_account][handler.region]
    for stack in list(backend.stacks.values()):
        resources = {
            getattr(r, "logical_resource_id", None): (
                getattr(r, "cf_resource_type", None),
                getattr(r, "physical_resource_id", None),
            )
            for r in stack.stack_resources
        }
        for logical_id, (kind, physical) in resources.items():
            if kind == "AWS::IAM::Role" and physical == role_name:
                # moto gives the Ref of some resources (AWS::Lambda::Version) as its own object
                outputs = {o["OutputKey"]: _text(o["OutputValue"]) for o in stack.outputs or []}
                return {
                    "logical_id": logical_id,
                    "stack": {
                        "name": stack.name,
                        "id": stack.stack_id,
                        "region": stack.region_name,
                        "parameters": dict(stack.stack_parameters),
                        "outputs": outputs,
                        "resources": resources,
                    },
                }
    return {}


def _text(value: Any) -> Any:
    """``value`` if JSON can hold it (a string, or a list or mapping of them), else its repr."""
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def moto_policies(handler: Any, principal: dict[str, Any]) -> list[Any]:
    from moto.iam.models import iam_backends

    backend = iam_backends[handler.current_account][handler.partition]
    if principal["kind"] == "role":
        name = principal["arn"].rsplit("/", 1)[-1]
        inline = [backend.get_role_policy(name, p)[1] for p in backend.list_role_policies(name)]
        attached, _ = backend.list_attached_role_policies(name)
    else:
        name = principal["name"]
        inline = [
            backend.get_user_policy(name, p)["policy_document"]
            for p in backend.list_user_policies(name)
        ]
        attached, _ = backend.list_attached_user_policies(name)
    managed = [backend.get_policy_version(p.arn, p.default_version_id).document for p in attached]
    documents = [*inline, *managed]
    return [json.loads(d) if isinstance(d, str) else d for d in documents]


def global_context(handler: Any, principal: dict[str, Any]) -> dict[str, Any]:
    """The global condition keys the local cloud can know."""
    context = {
        "aws:PrincipalArn": principal["arn"],
        "aws:PrincipalAccount": handler.current_account,
        "aws:RequestedRegion": handler.region,
        "aws:SecureTransport": "false",  # the local cloud speaks plain HTTP
    }
    if principal["kind"] == "user":
        context["aws:username"] = principal["name"]
    return context
