"""The manager: instruments and restores the Python functions of a target stack.

Invoked asynchronously (``InvocationType=Event``) by the WebSocket routes with one of:

* ``{"action": "instrument", "session_id", "stack_name", "connection_id", "functions", "timeout"}``
* ``{"action": "deinstrument", "session_id", "connection_id", "reply": true}`` (``detach``)
* ``{"action": "deinstrument_after_grace", "session_id", "connection_id"}`` (``$disconnect``)

Crash safety rests on the instrumentation record (PLLDBSessions item
``FUNCTION#<name>``): it is written, with the original configuration and the configuration
about to be applied, before anything changes, and an existing record's original is kept.
Every step is idempotent, so running either action again after a crash finishes the job.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

from plldb import protocol
from plldb.lambdas import common
from plldb.lambdas.common import log

ACTIONS = ("instrument", "deinstrument", "deinstrument_after_grace")
MAX_WORKERS = 8
UPDATE_POLL_SECONDS = 0.5  # an update usually settles within 1-3 s
UPDATE_WAIT_SECONDS = 120.0
RESTORE_RESERVE_SECONDS = 120.0  # of the manager's own time, kept for the restore after the grace

# Outcome statuses, reported as the ``status`` of a progress message.
OK = "ok"
SKIPPED = "skipped"
FAILED = "failed"
KEPT_DEPLOY = "kept-deploy"  # changed by a deploy while instrumented: plldb traces removed only
GONE = "gone"  # the function no longer exists


class InvalidRequest(ValueError):
    """The manager was invoked with a payload it does not understand."""


class StackNotFound(LookupError):
    """The session names a stack that does not exist (in this account and region)."""


class UpdateFailed(RuntimeError):
    """A function configuration update did not reach LastUpdateStatus Successful."""


@dataclass
class Outcome:
    function: str
    status: str
    message: str


@dataclass
class Plan:
    """What instrumenting one function will do, decided before anything changes."""

    name: str
    arn: str
    role_name: str
    original: dict[str, Any]
    applied: dict[str, Any]
    record: dict[str, Any] | None  # the existing instrumentation record, if any
    current: dict[str, Any] | None = None  # the configuration now, to skip a no-op update
    grant_added: bool = False


@dataclass
class Request:
    action: str
    session_id: str
    connection_id: str | None
    stack_name: str = ""
    functions: list[str] = field(default_factory=list)
    timeout: int | None = None
    reply: bool = False

    @classmethod
    def parse(cls, event: Any) -> Request:
        if not isinstance(event, dict) or event.get("action") not in ACTIONS:
            raise InvalidRequest("manager request without a known action")
        if not protocol.is_session_id(event.get("session_id")):
            raise InvalidRequest("manager request without a valid session_id")
        connection_id = event.get("connection_id")
        if connection_id is not None and not isinstance(connection_id, str):
            raise InvalidRequest("connection_id must be a string")
        functions = event.get("functions") or []
        if not isinstance(functions, list) or not all(isinstance(f, str) for f in functions):
            raise InvalidRequest("functions must be a list of names or globs")
        timeout = event.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1
        ):
            raise InvalidRequest("timeout must be a positive number of seconds")
        stack_name = event.get("stack_name") or ""
        if event["action"] == "instrument" and (not isinstance(stack_name, str) or not stack_name):
            raise InvalidRequest("instrument needs a stack_name")
        return cls(
            action=event["action"],
            session_id=event["session_id"],
            connection_id=connection_id,
            stack_name=stack_name,
            functions=functions,
            timeout=timeout,
            reply=bool(event.get("reply")),
        )


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run one manager action. Never raises: an async invocation would only be retried."""
    try:
        request = Request.parse(event)
    except InvalidRequest as exc:
        log.error("manager: %s", exc)
        return {"error": str(exc)}
    connection = common.Connection(request.connection_id, "")
    try:
        config = common.Config.from_environ()
        connection = common.Connection(request.connection_id, config.management_url)
        manager = Manager(config, connection)
        if request.action == "instrument":
            return manager.instrument(request)
        if request.action == "deinstrument":
            return manager.detach(request)
        return manager.deinstrument_after_grace(request, _remaining_seconds(context))
    except StackNotFound as exc:
        log.error("manager: %s", exc)
        connection.post(
            protocol.progress_message(request.action, str(exc), status=FAILED, done=True)
        )
        return {"error": str(exc)}
    except Exception as exc:
        log.exception("manager %s failed", request.action)
        connection.post(
            protocol.progress_message(
                request.action, f"plldb manager failed: {exc}", status=FAILED, done=True
            )
        )
        return {"error": str(exc)}


def _remaining_seconds(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000.0 if callable(remaining) else float(protocol.MAX_TIMEOUT)


# --- Configuration subsets -------------------------------------------------------------------
# A "subset" is the part of a function configuration plldb changes:
# {"Environment": {name: value}, "Layers": [arn, ...], "Timeout": seconds}.


def config_subset(configuration: dict[str, Any]) -> dict[str, Any]:
    return {
        "Environment": dict(configuration.get("Environment", {}).get("Variables", {})),
        "Layers": [layer["Arn"] for layer in configuration.get("Layers", [])],
        "Timeout": configuration["Timeout"],
    }


def is_plldb_layer(arn: str) -> bool:
    """Any version of the plldb layer (a bootstrap upgrade publishes a new version)."""
    parts = arn.split(":")
    return len(parts) >= 7 and parts[5] == "layer" and parts[6] == protocol.LAYER_NAME


def has_traces(subset: dict[str, Any]) -> bool:
    env = subset["Environment"]
    return (
        any(is_plldb_layer(arn) for arn in subset["Layers"])
        or any(name in env for name in protocol.SHIM_ENV_VARS)
        or env.get(protocol.ENV_EXEC_WRAPPER) == protocol.WRAPPER_PATH
    )


def strip_traces(subset: dict[str, Any]) -> dict[str, Any]:
    """The subset without anything plldb added; the chained exec wrapper is put back."""
    env = {k: v for k, v in subset["Environment"].items() if k not in protocol.SHIM_ENV_VARS}
    if env.get(protocol.ENV_EXEC_WRAPPER) == protocol.WRAPPER_PATH:
        original_wrapper = subset["Environment"].get(protocol.ENV_ORIGINAL_WRAPPER)
        if original_wrapper:
            env[protocol.ENV_EXEC_WRAPPER] = original_wrapper
        else:
            del env[protocol.ENV_EXEC_WRAPPER]
    layers = [arn for arn in subset["Layers"] if not is_plldb_layer(arn)]
    return {"Environment": env, "Layers": layers, "Timeout": subset["Timeout"]}


def environment_size(variables: dict[str, str]) -> int:
    """Lambda's 4 KB limit counts the bytes of every name and value."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in variables.items())


def matches(filters: list[str], *names: str) -> bool:
    return not filters or any(fnmatch.fnmatchcase(n, f) for f in filters for n in names)


class Manager:
    def __init__(self, config: common.Config, connection: common.Connection) -> None:
        self.config = config
        self.connection = connection
        self.lambda_ = common.client("lambda")
        self.iam = common.client("iam")
        self.dynamodb = common.client("dynamodb")
        self.cloudformation = common.client("cloudformation")

    # --- actions -------------------------------------------------------------------------

    def instrument(self, request: Request) -> dict[str, Any]:
        self.config.require(
            "sessions_table",
            "debugger_table",
            "layer_arn",
            "management_url",
            "payload_bucket",
            "connections_arn",
        )
        phase = "instrument"
        if self.session_status(request.session_id) != protocol.ACTIVE:
            message = f"session {request.session_id} is not active: nothing instrumented"
            self.connection.post(
                protocol.progress_message(phase, message, status=FAILED, done=True)
            )
            return {"error": message}
        functions = [
            name
            for logical, path, name in self.stack_functions(request.stack_name)
            if matches(request.functions, logical, path, name)
        ]
        self.post(
            phase, f"{len(functions)} function(s) of stack {request.stack_name} to instrument"
        )
        timeout = min(request.timeout or self.config.default_timeout, protocol.MAX_TIMEOUT)
        outcomes: list[Outcome] = []
        plans: list[Plan] = []
        for item in self.in_parallel(lambda name: self.plan(name, request, timeout), functions):
            if isinstance(item, Plan):
                plans.append(item)
            else:
                outcomes.append(item)
                self.report(phase, item)
        plans, failures = self.record_plans(plans, request)
        for outcome in failures:
            outcomes.append(outcome)
            self.report(phase, outcome)
        self.grant(plans)
        for outcome in self.in_parallel(self.apply, plans, name_of=lambda p: p.name):
            outcomes.append(outcome)
            self.report(phase, outcome)
        summary = _summary(outcomes)
        self.post(
            phase,
            f"{len(summary['instrumented'])} instrumented, {len(summary['skipped'])} skipped, "
            f"{len(summary['failed'])} failed",
            done=True,
            summary=summary,
        )
        if self.session_status(request.session_id) == protocol.CLOSED:
            log.info("session %s closed while instrumenting: restoring", request.session_id)
            self.deinstrument(request.session_id, reply=False)
        return summary

    def detach(self, request: Request) -> dict[str, Any]:
        """``detach``: close the session first (the shim stops routing to it), then restore."""
        self.close_session(request.session_id, None)
        return self.deinstrument(request.session_id, reply=request.reply)

    def deinstrument_after_grace(self, request: Request, remaining: float) -> dict[str, Any]:
        """Restore unless the client reconnects within the grace period."""
        wait = max(0.0, min(self.config.grace_seconds, remaining - RESTORE_RESERVE_SECONDS))
        log.info("session %s: waiting %.1f s for a reconnect", request.session_id, wait)
        time.sleep(wait)
        if not self.close_session(request.session_id, request.connection_id):
            log.info(
                "session %s reconnected or closed meanwhile: nothing to do", request.session_id
            )
            return {"reconnected": True}
        return self.deinstrument(request.session_id, reply=False)

    def deinstrument(self, session_id: str, reply: bool) -> dict[str, Any]:
        phase = "deinstrument"
        records = [r for r in self.records() if self.owned_by_finished(r, session_id)]
        if reply:
            self.post(phase, f"{len(records)} function(s) to restore")
        outcomes = []
        for outcome in self.in_parallel(
            self.restore, records, name_of=lambda r: r[protocol.A_FUNCTION_NAME]["S"]
        ):
            outcomes.append(outcome)
            if reply:
                self.report(phase, outcome)
            else:
                log.info("%s: %s (%s)", outcome.function, outcome.status, outcome.message)
        self.revoke(
            {r[protocol.A_ROLE_NAME]["S"] for r in records if r[protocol.A_GRANT_ADDED]["BOOL"]}
        )
        restored = [o.function for o in outcomes if o.status in (OK, KEPT_DEPLOY, GONE)]
        failed = [
            {"function": o.function, "reason": o.message} for o in outcomes if o.status == FAILED
        ]
        if reply:
            self.connection.post(
                {"type": protocol.TYPE_DETACHED, "restored": restored, "failed": failed}
            )
        return {"restored": restored, "failed": failed}

    # --- stack discovery -----------------------------------------------------------------

    def stack_functions(self, stack_name: str, prefix: str = "") -> list[tuple[str, str, str]]:
        """(logical id, nested path like "Nested/Fn", physical name) of every function."""
        found: list[tuple[str, str, str]] = []
        paginator = self.cloudformation.get_paginator("list_stack_resources")
        try:
            resources = [
                resource
                for page in paginator.paginate(StackName=stack_name)
                for resource in page["StackResourceSummaries"]
            ]
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) == "ValidationError":
                raise StackNotFound(f"stack {stack_name} does not exist") from exc
            raise
        for resource in resources:
            physical = resource.get("PhysicalResourceId")
            if not physical or resource["ResourceStatus"].startswith("DELETE"):
                continue
            logical = resource["LogicalResourceId"]
            path = f"{prefix}{logical}"
            if resource["ResourceType"] == "AWS::Lambda::Function":
                found.append((logical, path, physical))
            elif resource["ResourceType"] == "AWS::CloudFormation::Stack":
                found.extend(self.stack_functions(physical, f"{path}/"))
        return found

    # --- instrumenting one function ------------------------------------------------------

    def plan(self, name: str, request: Request, timeout: int) -> Plan | Outcome:
        """Decide what to do with one function; an Outcome when it is skipped."""
        configuration = self.lambda_.get_function_configuration(FunctionName=name)
        reason = self.unsupported(configuration)
        if reason:
            return Outcome(name, SKIPPED, reason)
        record = self.record(name)
        current = config_subset(configuration)
        if record and (
            has_traces(current) or current == json.loads(record[protocol.A_ORIGINAL]["S"])
        ):
            original = json.loads(record[protocol.A_ORIGINAL]["S"])
        else:
            # No record, or a deploy replaced the function since the record was made: what
            # runs now, without any plldb trace, is what must come back.
            original = strip_traces(current)
        if len(original["Layers"]) >= protocol.MAX_LAYERS:
            return Outcome(
                name,
                SKIPPED,
                f"already has {len(original['Layers'])} layers, the maximum is "
                f"{protocol.MAX_LAYERS}: no room for the plldb layer",
            )
        applied = self.applied(original, request, timeout)
        size = environment_size(applied["Environment"])
        if size > protocol.ENV_LIMIT:
            return Outcome(
                name,
                SKIPPED,
                f"environment would be {size} bytes with the plldb variables, over the "
                f"{protocol.ENV_LIMIT} byte limit",
            )
        return Plan(
            name=name,
            arn=configuration["FunctionArn"],
            role_name=configuration["Role"].rsplit("/", 1)[-1],
            original=original,
            applied=applied,
            record=record,
            current=current,
        )

    @staticmethod
    def unsupported(configuration: dict[str, Any]) -> str | None:
        if configuration.get("PackageType") == "Image":
            return "container image function: layers cannot be added to it"
        runtime = configuration.get("Runtime") or ""
        if not runtime.startswith("python"):
            return f"runtime {runtime or 'unknown'} is not Python"
        return None

    def applied(self, original: dict[str, Any], request: Request, timeout: int) -> dict[str, Any]:
        env = dict(original["Environment"])
        if protocol.ENV_EXEC_WRAPPER in env:
            env[protocol.ENV_ORIGINAL_WRAPPER] = env[protocol.ENV_EXEC_WRAPPER]
        env.update(
            {
                protocol.ENV_EXEC_WRAPPER: protocol.WRAPPER_PATH,
                protocol.ENV_SESSION_ID: request.session_id,
                protocol.ENV_SESSIONS_TABLE: self.config.sessions_table,
                protocol.ENV_DEBUGGER_TABLE: self.config.debugger_table,
                protocol.ENV_MANAGEMENT_URL: self.config.management_url,
                protocol.ENV_PAYLOAD_BUCKET: self.config.payload_bucket,
            }
        )
        return {
            "Environment": env,
            "Layers": [*original["Layers"], self.config.layer_arn],
            "Timeout": max(original["Timeout"], timeout),
        }

    def record_plans(self, plans: list[Plan], request: Request) -> tuple[list[Plan], list[Outcome]]:
        """Write every record before any change; GrantAdded is decided per role.

        Returns the plans whose record is written, and a FAILED outcome for the others (a
        concurrent manager rewrote the record meanwhile: the function is left untouched).
        """
        owned_roles = {
            r[protocol.A_ROLE_NAME]["S"]
            for r in self.records()
            if r[protocol.A_GRANT_ADDED]["BOOL"]
        }
        roles = sorted({plan.role_name for plan in plans} - owned_roles)
        lacking = parallel_map(lambda role: not self.has_policy(role), roles)
        added = owned_roles | {role for role, lacks in zip(roles, lacking, strict=True) if lacks}
        written: list[Plan] = []
        failures: list[Outcome] = []
        for plan in plans:
            plan.grant_added = plan.role_name in added
            try:
                self.write_record(plan, request)
                written.append(plan)
            except botocore.exceptions.ClientError as exc:
                if common.error_code(exc) != "ConditionalCheckFailedException":
                    raise
                failures.append(
                    Outcome(plan.name, FAILED, "its record changed meanwhile (another plldb run?)")
                )
        return written, failures

    def write_record(self, plan: Plan, request: Request) -> None:
        key = {protocol.A_SESSION_ID: {"S": protocol.function_key(plan.name)}}
        values = {
            protocol.A_KIND: {"S": protocol.KIND_INSTRUMENTATION},
            protocol.A_STACK_NAME: {"S": request.stack_name},
            protocol.A_FUNCTION_NAME: {"S": plan.name},
            protocol.A_FUNCTION_ARN: {"S": plan.arn},
            protocol.A_ORIGINAL: {"S": common.dumps(plan.original)},
            protocol.A_APPLIED: {"S": common.dumps(plan.applied)},
            protocol.A_ROLE_NAME: {"S": plan.role_name},
            protocol.A_GRANT_ADDED: {"BOOL": plan.grant_added},
            protocol.A_STATUS: {"S": protocol.INSTRUMENTING},
            protocol.A_INSTRUMENTED_BY: {"S": request.session_id},
            protocol.A_CREATED_AT: {"S": common.iso_now()},
        }
        names = {f"#a{i}": name for i, name in enumerate(values)}
        placeholders = {name: f"#a{i}" for i, name in enumerate(values)}
        arguments: dict[str, Any] = {f":v{i}": value for i, value in enumerate(values.values())}
        if plan.record is None:
            condition = f"attribute_not_exists({placeholders[protocol.A_ORIGINAL]})"
        else:  # only if nobody else rewrote the original since we read it
            condition = f"{placeholders[protocol.A_ORIGINAL]} = :expected"
            arguments[":expected"] = plan.record[protocol.A_ORIGINAL]
        self.dynamodb.update_item(
            TableName=self.config.sessions_table,
            Key=key,
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=arguments,
        )

    def apply(self, plan: Plan) -> Outcome:
        """Update the function unless it already runs this session's configuration.

        A reconnect re-runs instrument: skipping the no-op update spares every function an
        UpdateFunctionConfiguration and its execution environments a cold start.
        """
        if plan.current == plan.applied:
            self.mark_instrumented(plan.name)
            return Outcome(plan.name, OK, f"already instrumented (timeout {plan.applied['Timeout']} s)")
        self.update_function(plan.name, plan.applied)
        self.mark_instrumented(plan.name)
        return Outcome(plan.name, OK, f"instrumented (timeout {plan.applied['Timeout']} s)")

    def mark_instrumented(self, name: str) -> None:
        self.dynamodb.update_item(
            TableName=self.config.sessions_table,
            Key={protocol.A_SESSION_ID: {"S": protocol.function_key(name)}},
            UpdateExpression="SET #status = :instrumented",
            ExpressionAttributeNames={"#status": protocol.A_STATUS},
            ExpressionAttributeValues={":instrumented": {"S": protocol.INSTRUMENTED}},
        )

    # --- restoring one function ----------------------------------------------------------

    def restore(self, record: dict[str, Any]) -> Outcome:
        name = record[protocol.A_FUNCTION_NAME]["S"]
        try:
            configuration = self.lambda_.get_function_configuration(FunctionName=name)
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "ResourceNotFoundException":
                raise
            self.delete_record(name)
            return Outcome(name, GONE, "function no longer exists")
        current = config_subset(configuration)
        original = json.loads(record[protocol.A_ORIGINAL]["S"])
        if current in (json.loads(record[protocol.A_APPLIED]["S"]), original):
            target, outcome = original, Outcome(name, OK, "restored")
        else:
            target = strip_traces(current)
            outcome = Outcome(
                name,
                KEPT_DEPLOY,
                "changed since it was instrumented (a deploy?): kept as deployed, plldb "
                "layer and variables removed",
            )
        if target != current:
            self.update_function(name, target)
        self.delete_record(name)
        return outcome

    # --- AWS operations ------------------------------------------------------------------

    def update_function(self, name: str, subset: dict[str, Any]) -> None:
        """Apply a subset and wait for LastUpdateStatus Successful (retrying a busy function)."""
        self.wait_updated(name)
        for attempt in range(6):
            try:
                self.lambda_.update_function_configuration(
                    FunctionName=name,
                    Environment={"Variables": subset["Environment"]},
                    Layers=subset["Layers"],
                    Timeout=subset["Timeout"],
                )
                break
            except botocore.exceptions.ClientError as exc:
                if common.error_code(exc) != "ResourceConflictException" or attempt == 5:
                    raise
                time.sleep(1 + attempt)
                self.wait_updated(name)
        self.wait_updated(name)

    def wait_updated(self, name: str) -> None:
        deadline = time.monotonic() + UPDATE_WAIT_SECONDS
        while True:
            configuration = self.lambda_.get_function_configuration(FunctionName=name)
            status = configuration.get("LastUpdateStatus", "Successful")
            if status == "Successful":
                return
            if status == "Failed":
                raise UpdateFailed(
                    f"update failed: {configuration.get('LastUpdateStatusReason', 'no reason given')}"
                )
            if time.monotonic() > deadline:
                raise UpdateFailed(f"update still {status} after {UPDATE_WAIT_SECONDS:.0f} s")
            time.sleep(UPDATE_POLL_SECONDS)

    def has_policy(self, role_name: str) -> bool:
        try:
            self.iam.get_role_policy(RoleName=role_name, PolicyName=protocol.SHIM_POLICY_NAME)
            return True
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) == "NoSuchEntity":
                return False
            raise

    def grant(self, plans: list[Plan]) -> None:
        """Put the shim's policy on each role that lacks it (a role may serve many functions).

        Roles are handled in parallel: IAM calls take 0.1-0.3 s each in AWS.
        """
        parallel_map(lambda item: self.grant_role(*item), {p.role_name: p.arn for p in plans}.items())

    def grant_role(self, role_name: str, function_arn: str) -> None:
        if not self.has_policy(role_name):
            self.iam.put_role_policy(
                RoleName=role_name,
                PolicyName=protocol.SHIM_POLICY_NAME,
                PolicyDocument=json.dumps(self.shim_policy(function_arn)),
            )

    def revoke(self, roles: set[str]) -> None:
        """Remove our policy from roles we granted that no remaining record still uses."""
        in_use = {r[protocol.A_ROLE_NAME]["S"] for r in self.records()}
        parallel_map(self.revoke_role, sorted(roles - in_use))

    def revoke_role(self, role_name: str) -> None:
        try:
            self.iam.delete_role_policy(RoleName=role_name, PolicyName=protocol.SHIM_POLICY_NAME)
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "NoSuchEntity":
                raise

    def shim_policy(self, function_arn: str) -> dict[str, Any]:
        """What the shim does in the function: its tables, the connection, the payloads."""
        _, partition, _, region, account = function_arn.split(":")[:5]
        table = f"arn:{partition}:dynamodb:{region}:{account}:table"
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem"],
                    "Resource": f"{table}/{self.config.debugger_table}",
                },
                {
                    "Effect": "Allow",
                    "Action": ["dynamodb:GetItem"],
                    "Resource": f"{table}/{self.config.sessions_table}",
                },
                {
                    "Effect": "Allow",
                    "Action": ["execute-api:ManageConnections"],
                    "Resource": self.config.connections_arn,
                },
                {
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:GetObject"],
                    "Resource": f"arn:{partition}:s3:::{self.config.payload_bucket}/{protocol.PAYLOAD_PREFIX}*",
                },
            ],
        }

    # --- the sessions table --------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """Every instrumentation record (consistent scan: a GSI could miss a fresh write)."""
        items: list[dict[str, Any]] = []
        paginator = self.dynamodb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.config.sessions_table,
            ConsistentRead=True,
            FilterExpression="#kind = :kind",
            ExpressionAttributeNames={"#kind": protocol.A_KIND},
            ExpressionAttributeValues={":kind": {"S": protocol.KIND_INSTRUMENTATION}},
        ):
            items.extend(page["Items"])
        return items

    def record(self, name: str) -> dict[str, Any] | None:
        return self.dynamodb.get_item(
            TableName=self.config.sessions_table,
            Key={protocol.A_SESSION_ID: {"S": protocol.function_key(name)}},
            ConsistentRead=True,
        ).get("Item")

    def delete_record(self, name: str) -> None:
        self.dynamodb.delete_item(
            TableName=self.config.sessions_table,
            Key={protocol.A_SESSION_ID: {"S": protocol.function_key(name)}},
        )

    def session_status(self, session_id: str) -> str | None:
        item = self.dynamodb.get_item(
            TableName=self.config.sessions_table,
            Key={protocol.A_SESSION_ID: {"S": session_id}},
            ConsistentRead=True,
        ).get("Item")
        if not item or item.get(protocol.A_KIND, {}).get("S") != protocol.KIND_SESSION:
            return None
        return item.get(protocol.A_STATUS, {}).get("S")

    def owned_by_finished(self, record: dict[str, Any], session_id: str) -> bool:
        """Restore records of this session, and orphans of sessions that are over.

        A record of another live session (a ``--force`` takeover) is left alone.
        """
        owner = record.get(protocol.A_INSTRUMENTED_BY, {}).get("S")
        return owner == session_id or self.session_status(owner or "") in (None, protocol.CLOSED)

    def close_session(self, session_id: str, connection_id: str | None) -> bool:
        """CLOSED; for the grace path only if that connection was not replaced by a new one."""
        names = {"#kind": protocol.A_KIND, "#status": protocol.A_STATUS}
        values = {":session": {"S": protocol.KIND_SESSION}, ":closed": {"S": protocol.CLOSED}}
        condition = "#kind = :session"
        if connection_id is not None:
            # PENDING with the old connection id: the tool re-opened its session to reconnect
            # but never got through (network down, then killed); restore as for DISCONNECTED.
            condition += " AND #status IN (:disconnected, :pending) AND #conn = :conn"
            names["#conn"] = protocol.A_CONNECTION_ID
            values[":disconnected"] = {"S": protocol.DISCONNECTED}
            values[":pending"] = {"S": protocol.PENDING}
            values[":conn"] = {"S": connection_id}
        try:
            self.dynamodb.update_item(
                TableName=self.config.sessions_table,
                Key={protocol.A_SESSION_ID: {"S": session_id}},
                ConditionExpression=condition,
                UpdateExpression="SET #status = :closed",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
            return True
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False

    # --- plumbing ------------------------------------------------------------------------

    def in_parallel(
        self,
        work: Callable[[Any], Any],
        items: Iterable[Any],
        name_of: Callable[[Any], str] = str,
    ) -> Iterable[Any]:
        """Run ``work`` on each item in threads; a failure becomes a FAILED Outcome."""
        items = list(items)
        if not items:
            return
        with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items))) as pool:
            futures = {pool.submit(work, item): name_of(item) for item in items}
            for future in as_completed(futures):
                try:
                    yield future.result()
                except Exception as exc:
                    log.exception("%s failed", futures[future])
                    yield Outcome(futures[future], FAILED, _reason(exc))

    def post(self, phase: str, message: str, **fields: Any) -> None:
        log.info("%s %s: %s", phase, fields.get("function") or "", message)
        self.connection.post(protocol.progress_message(phase, message, **fields))

    def report(self, phase: str, outcome: Outcome) -> None:
        self.post(phase, outcome.message, function=outcome.function, status=outcome.status)


def parallel_map(work: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """``work`` on every item in threads; the first failure is raised (unlike in_parallel)."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items))) as pool:
        return list(pool.map(work, items))


def _reason(exc: Exception) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return str(exc) or type(exc).__name__


def _summary(outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "instrumented": sorted(o.function for o in outcomes if o.status == OK),
        "skipped": [
            {"function": o.function, "reason": o.message} for o in outcomes if o.status == SKIPPED
        ],
        "failed": [
            {"function": o.function, "reason": o.message} for o in outcomes if o.status == FAILED
        ],
    }
