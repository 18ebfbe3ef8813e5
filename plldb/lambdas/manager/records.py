"""The manager's view of PLLDBSessions: instrumentation records and session states.

An instrumentation record (item ``FUNCTION#<name>``) says, for as long as a function is
instrumented, which session instrumented it and whether plldb granted the shim's policy to
its role. It holds no configuration: restoring reads only the function itself. A session
item says whether a debugger can still come back for it. Both live in the sessions table.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from plldb import naming
from plldb.lambdas import common
from plldb.lambdas.common import log
from plldb.lambdas.manager.plan import Plan

# How long one run holds a record while it restores the function: longer than the slowest
# restore (an update waits up to 120 s to settle, retried), shorter than the sweep's period
# plus the manager's timeout, so a run that crashed holding it is finished by a later one.
RESTORE_HOLD_SECONDS = 600


class Records:
    """Reads and conditional writes of the sessions table, for one manager run."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def all(self) -> list[dict[str, Any]]:
        """Every instrumentation record (consistent scan: a GSI could miss a fresh write)."""
        items: list[dict[str, Any]] = []
        paginator = self.dynamodb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.table,
            ConsistentRead=True,
            FilterExpression="#kind = :kind",
            ExpressionAttributeNames={"#kind": naming.A_KIND},
            ExpressionAttributeValues={":kind": {"S": naming.KIND_INSTRUMENTATION}},
        ):
            items.extend(page["Items"])
        return items

    def get(self, name: str) -> dict[str, Any] | None:
        return self.dynamodb.get_item(
            TableName=self.table,
            Key={naming.A_SESSION_ID: {"S": naming.function_key(name)}},
            ConsistentRead=True,
        ).get("Item")

    def delete(self, name: str) -> None:
        self.dynamodb.delete_item(
            TableName=self.table,
            Key={naming.A_SESSION_ID: {"S": naming.function_key(name)}},
        )

    def hold_for_restore(self, record: dict[str, Any]) -> bool:
        """Hold this record while this run restores its function; False when it is gone,
        rewritten since it was read, or held by another run.

        Two runs may restore the same function at once (``detach``, and the instrument run
        of a reconnect that finds its session closed). The second one would change or
        untag a function the first had already released, and the manager's role may do
        neither once the claim tag is gone (AWS answers AccessDenied). Only the holder
        calls Lambda. A hold lapses after :data:`RESTORE_HOLD_SECONDS`.
        """
        now = common.now()
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={naming.A_SESSION_ID: {"S": naming.function_key(record_name(record))}},
                ConditionExpression="#by = :by AND #at = :at AND "
                "(attribute_not_exists(#hold) OR #hold < :now)",
                UpdateExpression="SET #hold = :until",
                ExpressionAttributeNames={
                    "#by": naming.A_INSTRUMENTED_BY,
                    "#at": naming.A_CREATED_AT,
                    "#hold": naming.A_RESTORING_UNTIL,
                },
                ExpressionAttributeValues={
                    ":by": record.get(naming.A_INSTRUMENTED_BY, {"S": ""}),
                    ":at": record.get(naming.A_CREATED_AT, {"S": ""}),
                    ":now": {"N": str(now)},
                    ":until": {"N": str(now + RESTORE_HOLD_SECONDS)},
                },
            )
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def release_hold(self, record: dict[str, Any]) -> None:
        """Let the next run restore at once (this run's restore failed)."""
        self.dynamodb.update_item(
            TableName=self.table,
            Key={naming.A_SESSION_ID: {"S": naming.function_key(record_name(record))}},
            UpdateExpression="REMOVE #hold",
            ExpressionAttributeNames={"#hold": naming.A_RESTORING_UNTIL},
        )

    def write(self, plan: Plan, stack_name: str, session_id: str) -> None:
        """Write the record before anything changes; only if nobody rewrote it since it was read.

        A concurrent run that wrote it meanwhile may have decided ``GrantAdded`` differently:
        overwriting its record could leave the shim's policy on a role for good. Raises
        ClientError ConditionalCheckFailedException when the record changed meanwhile.
        """
        key = {naming.A_SESSION_ID: {"S": naming.function_key(plan.name)}}
        values = {
            naming.A_KIND: {"S": naming.KIND_INSTRUMENTATION},
            naming.A_STACK_NAME: {"S": stack_name},
            naming.A_FUNCTION_NAME: {"S": plan.name},
            naming.A_FUNCTION_ARN: {"S": plan.arn},
            naming.A_ROLE_NAME: {"S": plan.role_name},
            naming.A_GRANT_ADDED: {"BOOL": plan.grant_added},
            naming.A_STATUS: {"S": naming.INSTRUMENTING},
            naming.A_INSTRUMENTED_BY: {"S": session_id},
            naming.A_CREATED_AT: {"S": common.iso_now()},
        }
        names = {f"#a{i}": name for i, name in enumerate(values)}
        placeholders = {name: f"#a{i}" for i, name in enumerate(values)}
        arguments: dict[str, Any] = {f":v{i}": value for i, value in enumerate(values.values())}
        if plan.record is None:
            condition = f"attribute_not_exists({placeholders[naming.A_KIND]})"
        else:  # the record as it was read: same writer, same time
            by, at = placeholders[naming.A_INSTRUMENTED_BY], placeholders[naming.A_CREATED_AT]
            condition = f"{by} = :read_by AND {at} = :read_at"
            arguments[":read_by"] = plan.record.get(naming.A_INSTRUMENTED_BY, {"S": ""})
            arguments[":read_at"] = plan.record.get(naming.A_CREATED_AT, {"S": ""})
        self.dynamodb.update_item(
            TableName=self.table,
            Key=key,
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values))),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=arguments,
        )

    def mark_instrumented(self, name: str) -> None:
        self.dynamodb.update_item(
            TableName=self.table,
            Key={naming.A_SESSION_ID: {"S": naming.function_key(name)}},
            UpdateExpression="SET #status = :instrumented",
            ExpressionAttributeNames={"#status": naming.A_STATUS},
            ExpressionAttributeValues={":instrumented": {"S": naming.INSTRUMENTED}},
        )

    # --- sessions -----------------------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any] | None:
        """The session item, or None when there is none (or the key is not a session)."""
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={naming.A_SESSION_ID: {"S": session_id}},
            ConsistentRead=True,
        ).get("Item")
        if not item or item.get(naming.A_KIND, {}).get("S") != naming.KIND_SESSION:
            return None
        return item

    def spend_nonce(self, session_id: str, digest: str) -> bool:
        """Consume the session's instrument nonce if ``digest`` is its digest (one
        conditional write: a second run with the same nonce finds none)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={naming.A_SESSION_ID: {"S": session_id}},
                ConditionExpression="#nonce = :digest",
                UpdateExpression="REMOVE #nonce",
                ExpressionAttributeNames={"#nonce": naming.A_INSTRUMENT_NONCE},
                ExpressionAttributeValues={":digest": {"S": digest}},
            )
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def session_status(self, session_id: str) -> str | None:
        """The session's status; None when it is gone (no item, or its TTL has passed)."""
        item = self.session(session_id)
        if item is None or naming.ttl_expired(item.get(naming.A_TTL, {}).get("N"), common.now()):
            return None
        return item.get(naming.A_STATUS, {}).get("S")

    def session_over(self, session_id: str, config: common.Config) -> str | None:
        """Why no debugger can come back for this session, or None while one still may.

        Over: no session item, its TTL passed, CLOSED, or DISCONNECTED for longer than the
        grace period. An ACTIVE session whose connection API Gateway no longer knows lost
        its ``$disconnect``: it is marked DISCONNECTED now, as ``$disconnect`` would have,
        so a later sweep restores it once the grace period has passed without a reconnect.
        """
        item = self.session(session_id)
        if item is None:
            return "no session item"
        status = item.get(naming.A_STATUS, {}).get("S", "")
        now = common.now()
        if naming.ttl_expired(item.get(naming.A_TTL, {}).get("N"), now):
            return f"{status} session past its TTL"
        if status == naming.CLOSED:
            return "closed"
        if status == naming.DISCONNECTED:
            since = naming.iso_epoch(item.get(naming.A_DISCONNECTED_AT, {}).get("S"))
            away = now - since if since is not None else float("inf")
            if away >= config.grace_seconds:
                return f"disconnected for {away:.0f} s, past the {config.grace_seconds:.0f} s grace period"
        connection_id = item.get(naming.A_CONNECTION_ID, {}).get("S", "")
        if status == naming.ACTIVE and not connection_alive(connection_id, config.management_url):
            log.info("sweep: session %s lost its $disconnect: now DISCONNECTED", session_id)
            common.mark_disconnected(config, session_id, connection_id)
        return None

    def close_session(self, session_id: str, connection_id: str | None) -> bool:
        """CLOSED; for the grace path only if that connection was not replaced by a new one."""
        names = {"#kind": naming.A_KIND, "#status": naming.A_STATUS}
        values = {":session": {"S": naming.KIND_SESSION}, ":closed": {"S": naming.CLOSED}}
        condition = "#kind = :session"
        if connection_id is not None:
            # PENDING with the old connection id: the tool re-opened its session to reconnect
            # but never got through (network down, then killed); restore as for DISCONNECTED.
            condition += " AND #status IN (:disconnected, :pending) AND #conn = :conn"
            names["#conn"] = naming.A_CONNECTION_ID
            values[":disconnected"] = {"S": naming.DISCONNECTED}
            values[":pending"] = {"S": naming.PENDING}
            values[":conn"] = {"S": connection_id}
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key={naming.A_SESSION_ID: {"S": session_id}},
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


def record_name(record: dict[str, Any]) -> str:
    """The function an instrumentation record is about."""
    return str(record[naming.A_FUNCTION_NAME]["S"])


def connection_alive(connection_id: str, management_url: str) -> bool:
    """False only when API Gateway says the connection is gone (410); True if unsure."""
    if not connection_id or not management_url:
        return False
    api = common.client("apigatewaymanagementapi", endpoint_url=management_url)
    try:
        api.get_connection(ConnectionId=connection_id)
    except botocore.exceptions.ClientError as exc:
        if common.error_code(exc) == "GoneException":
            return False
        log.warning("sweep: cannot tell whether connection %s is alive: %s", connection_id, exc)
    return True
