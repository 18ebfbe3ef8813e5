"""A shared stage's route table: the stack's lock item in PLLDBSessions.

Written only by the helper Lambdas that know the caller: the authorizer adds the entry of
the session it creates (:func:`join`), the manager removes the entry of a session that is
over (:func:`leave`) and, when none is left, restores the stage's functions between
:func:`begin_restore` and :func:`finish_restore`. The shim only reads it
(plldb/layer/stage.py). Every write is one conditional UpdateItem, so two developers
joining or leaving at the same time never lose each other's entry, and nobody joins a
stage while its functions are being restored (the join is refused: attach again).
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from plldb import limits, naming
from plldb.lambdas import common

# How long a restore of the stage's functions may hold the lock item: as long as one run
# may hold a function's record (a crashed run's hold lapses, and the sweep finishes it).
RESTORE_HOLD_SECONDS = 600


_NOT_RESTORING = "(attribute_not_exists(#hold) OR #hold < :now)"


class StageRefused(Exception):
    """A conditional write of the route table failed; the text says why."""


def key(stack_name: str) -> dict[str, Any]:
    return {naming.A_SESSION_ID: {"S": naming.stack_lock_key(stack_name)}}


def read(config: common.Config, stack_name: str) -> dict[str, Any] | None:
    """The stack's lock item (a whole-stack session's or a shared stage's), consistently."""
    return common.client("dynamodb").get_item(
        TableName=config.sessions_table, Key=key(stack_name), ConsistentRead=True
    ).get("Item")


def join(config: common.Config, stack_name: str, session_id: str, entry: dict[str, Any],
         holder: str | None) -> None:
    """Add ``session_id``'s entry, turning the lock into a shared stage's if it names
    ``holder`` (a whole-stack session that is over or was just closed) or does not exist.

    Two writes: the map must exist before an entry can be set in it. Both are refused while
    the stage's functions are being restored (:func:`begin_restore`), so a refused join
    changes nothing.
    """
    dynamodb = common.client("dynamodb")
    now = common.now()
    names = {"#kind": naming.A_KIND, "#mode": naming.A_MODE, "#routes": naming.A_ROUTES,
             "#ttl": naming.A_TTL, "#holder": naming.A_HOLDER, "#hold": naming.A_RESTORING_UNTIL}
    values: dict[str, Any] = {
        ":kind": {"S": naming.KIND_STACK_LOCK}, ":shared": {"S": naming.MODE_SHARED},
        ":empty": {"M": {}}, ":ttl": {"N": str(now + limits.SESSION_TTL_SECONDS)},
        ":now": {"N": str(now)},
    }
    owner = "attribute_not_exists(#kind) OR #mode = :shared"
    if holder:
        owner += " OR #holder = :holder"
        values[":holder"] = {"S": holder}
    try:
        _update(dynamodb, config, stack_name, refusal="",
                ConditionExpression=f"({owner}) AND {_NOT_RESTORING}",
                UpdateExpression="SET #kind = :kind, #mode = :shared, #ttl = :ttl, "
                "#routes = if_not_exists(#routes, :empty) REMOVE #holder",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        _update(dynamodb, config, stack_name, refusal="",
                ConditionExpression=f"#mode = :shared AND {_NOT_RESTORING}",
                UpdateExpression="SET #routes.#me = :entry",
                ExpressionAttributeNames={"#mode": naming.A_MODE, "#routes": naming.A_ROUTES,
                                          "#hold": naming.A_RESTORING_UNTIL, "#me": session_id},
                ExpressionAttributeValues={":shared": {"S": naming.MODE_SHARED}, ":entry": entry,
                                           ":now": {"N": str(now)}})
    except StageRefused as exc:
        raise StageRefused(_why_not(read(config, stack_name), stack_name, now)) from exc


def _why_not(item: dict[str, Any] | None, stack_name: str, now: int) -> str:
    """Why a join was refused, from the lock item as it is now."""
    hold = int((item or {}).get(naming.A_RESTORING_UNTIL, {}).get("N", "0"))
    if hold >= now:
        return (f"stack {stack_name}'s shared stage is being restored (its last session just "
                "ended): attach again in a few seconds")
    return f"stack {stack_name} was taken by a whole-stack session meanwhile: plldb status shows who"


def leave(config: common.Config, stack_name: str, session_id: str) -> None:
    """Remove ``session_id``'s entry (nothing when it has none)."""
    try:
        _update(common.client("dynamodb"), config, stack_name, refusal="",
                ConditionExpression="#mode = :shared",
                UpdateExpression="REMOVE #routes.#me",
                ExpressionAttributeNames={"#mode": naming.A_MODE, "#routes": naming.A_ROUTES,
                                          "#me": session_id},
                ExpressionAttributeValues={":shared": {"S": naming.MODE_SHARED}})
    except StageRefused:
        pass  # no shared stage any more: nothing to remove


def begin_restore(config: common.Config, stack_name: str) -> bool:
    """Hold the stage for restoring its functions, if no entry is left; False otherwise
    (a session joined meanwhile, or another run restores it)."""
    now = common.now()
    try:
        _update(common.client("dynamodb"), config, stack_name, refusal="",
                ConditionExpression=f"#mode = :shared AND size(#routes) = :zero AND {_NOT_RESTORING}",
                UpdateExpression="SET #hold = :until",
                ExpressionAttributeNames={"#mode": naming.A_MODE, "#routes": naming.A_ROUTES,
                                          "#hold": naming.A_RESTORING_UNTIL},
                ExpressionAttributeValues={":shared": {"S": naming.MODE_SHARED},
                                           ":zero": {"N": "0"}, ":now": {"N": str(now)},
                                           ":until": {"N": str(now + RESTORE_HOLD_SECONDS)}})
    except StageRefused:
        return False
    return True


def finish_restore(config: common.Config, stack_name: str) -> None:
    """Delete the lock item once the stage's functions are restored (if still empty)."""
    try:
        common.client("dynamodb").delete_item(
            TableName=config.sessions_table, Key=key(stack_name),
            ConditionExpression="#mode = :shared AND size(#routes) = :zero",
            ExpressionAttributeNames={"#mode": naming.A_MODE, "#routes": naming.A_ROUTES},
            ExpressionAttributeValues={":shared": {"S": naming.MODE_SHARED}, ":zero": {"N": "0"}},
        )
    except botocore.exceptions.ClientError as exc:
        if common.error_code(exc) != "ConditionalCheckFailedException":
            raise


def _update(dynamodb: Any, config: common.Config, stack_name: str, refusal: str,
            **arguments: Any) -> None:
    try:
        dynamodb.update_item(TableName=config.sessions_table, Key=key(stack_name), **arguments)
    except botocore.exceptions.ClientError as exc:
        if common.error_code(exc) == "ConditionalCheckFailedException":
            raise StageRefused(refusal) from exc
        raise
