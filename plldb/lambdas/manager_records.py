"""The manager's view of PLLDBSessions: instrumentation records and session states.

An instrumentation record (item ``FUNCTION#<name>``) holds a function's original
configuration for as long as the function is instrumented; a session item says whether a
debugger can still come back for it. Both live in the sessions table.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from plldb import protocol
from plldb.lambdas import common
from plldb.lambdas.manager_plan import Plan


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
            ExpressionAttributeNames={"#kind": protocol.A_KIND},
            ExpressionAttributeValues={":kind": {"S": protocol.KIND_INSTRUMENTATION}},
        ):
            items.extend(page["Items"])
        return items

    def get(self, name: str) -> dict[str, Any] | None:
        return self.dynamodb.get_item(
            TableName=self.table,
            Key={protocol.A_SESSION_ID: {"S": protocol.function_key(name)}},
            ConsistentRead=True,
        ).get("Item")

    def delete(self, name: str) -> None:
        self.dynamodb.delete_item(
            TableName=self.table,
            Key={protocol.A_SESSION_ID: {"S": protocol.function_key(name)}},
        )

    def write(self, plan: Plan, stack_name: str, session_id: str) -> None:
        """Write the record before anything changes; only if nobody rewrote it since it was read.

        Raises ClientError ConditionalCheckFailedException when the record changed meanwhile.
        """
        key = {protocol.A_SESSION_ID: {"S": protocol.function_key(plan.name)}}
        values = {
            protocol.A_KIND: {"S": protocol.KIND_INSTRUMENTATION},
            protocol.A_STACK_NAME: {"S": stack_name},
            protocol.A_FUNCTION_NAME: {"S": plan.name},
            protocol.A_FUNCTION_ARN: {"S": plan.arn},
            protocol.A_ORIGINAL: {"S": common.dumps(plan.original)},
            protocol.A_APPLIED: {"S": common.dumps(plan.applied)},
            protocol.A_ROLE_NAME: {"S": plan.role_name},
            protocol.A_GRANT_ADDED: {"BOOL": plan.grant_added},
            protocol.A_STATUS: {"S": protocol.INSTRUMENTING},
            protocol.A_INSTRUMENTED_BY: {"S": session_id},
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
            Key={protocol.A_SESSION_ID: {"S": protocol.function_key(name)}},
            UpdateExpression="SET #status = :instrumented",
            ExpressionAttributeNames={"#status": protocol.A_STATUS},
            ExpressionAttributeValues={":instrumented": {"S": protocol.INSTRUMENTED}},
        )

    # --- sessions -----------------------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any] | None:
        """The session item, or None when there is none (or the key is not a session)."""
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key={protocol.A_SESSION_ID: {"S": session_id}},
            ConsistentRead=True,
        ).get("Item")
        if not item or item.get(protocol.A_KIND, {}).get("S") != protocol.KIND_SESSION:
            return None
        return item

    def session_status(self, session_id: str) -> str | None:
        """The session's status; None when there is no session item."""
        item = self.session(session_id)
        return None if item is None else item.get(protocol.A_STATUS, {}).get("S")

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
                TableName=self.table,
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
