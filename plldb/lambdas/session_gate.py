"""Opening a session on ``$connect``, for an authenticated caller (docs/security.md).

Clients never write PLLDBSessions: the authorizer does it here, once it knows who is calling.
A new session id creates the session, owned by the caller; a known one is resumed only by
the identity that created it (a reconnect). One stack has one live session: another
identity's or the caller's own (a second terminal, or an attach that crashed: ``plldb
status`` tells), is refused unless the connect says ``force=1``, which closes it.

A shared stage (``routes=``/``mirror=1``): any number of sessions with routes or mirrors
live on one stack at once (up to ``MAX_SHARED_SESSIONS``), each an entry of the route
table in the stack's lock item (plldb/routing.py); a whole-stack session is refused while
they live, and they are refused while one lives, unless ``force=1``. A session's routes are
fixed when the authorizer creates it for its authenticated caller: nobody, its owner
included, can change another session's entry.

A by-name session (``names=``, functions deployed without CloudFormation) is keyed by
:func:`plldb.protocol.by_name_key` of its names instead of a stack name: one set of names
has one live session, and the names are kept in the session for the manager.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from plldb import limits, naming, route_table
from plldb.lambdas import common, stage_table
from plldb.lambdas.caller import Caller
from plldb.lambdas.common import log
from plldb.lambdas.connect_options import Options, Refused
from plldb.lambdas.manager import stage
from plldb.lambdas.manager.records import Records

LIVE = (naming.PENDING, naming.ACTIVE, naming.DISCONNECTED)
_NEW_KEY: dict[str, Any] = {  # a conditional put that only creates
    "ConditionExpression": "attribute_not_exists(#id)",
    "ExpressionAttributeNames": {"#id": naming.A_SESSION_ID},
}


def spend_proof(config: common.Config, caller: Caller) -> None:
    """Use an identity proof once: a conditional write of its digest (kept until the proof
    would be refused as too old anyway). A replayed proof is refused here."""
    expires = int(caller.signed_at) + naming.IDENTITY_MAX_AGE_SECONDS + 60
    item = {
        naming.A_SESSION_ID: {"S": f"{naming.PROOF_KEY_PREFIX}{caller.proof_digest}"},
        naming.A_KIND: {"S": naming.KIND_PROOF},
        naming.A_TTL: {"N": str(expires)},
    }
    _put_unless(config, item, _NEW_KEY, f"the identity proof of {caller.arn} was already used")


def open_session(
    config: common.Config,
    caller: Caller,
    session_id: str,
    query: dict[str, Any],
    connection_id: str,
    nonce: str,
) -> str:
    """Create or resume ``session_id`` as ACTIVE on ``connection_id``; its stack name.

    ``nonce`` is this connect's one-time permission to start instrumenting: the session
    keeps its digest, ``$connect`` passes the nonce to the manager, which instruments only
    with it (plldb/lambdas/manager/entry.py)."""
    table = common.client("dynamodb")
    existing = table.get_item(
        TableName=config.sessions_table,
        Key={naming.A_SESSION_ID: {"S": session_id}},
        ConsistentRead=True,
    ).get("Item")
    if existing:
        return _resume(config, caller, session_id, connection_id, nonce)
    options = Options.from_query(query)
    if options.shared:
        _join_stage(config, caller, session_id, options, connection_id, nonce)
        return options.stack_name
    seen = _make_room(config, caller, options, session_id)
    _create(config, caller, session_id, options, connection_id, nonce, seen)
    return options.stack_name


def _join_stage(config: common.Config, caller: Caller, session_id: str, options: Options,
                connection_id: str, nonce: str) -> None:
    """Add a session with routes (or a mirror) to the stack's shared stage.

    A live whole-stack session is closed first only with ``force=1`` and the caller's route
    claims on its functions; a full stage is refused. The entry is written before the
    session item, as the lock is for a whole-stack session.
    """
    if options.names:
        raise Refused("routes and mirrors need a stack: a by-name session takes every invocation")
    lock = stage_table.read(config, options.stack_name)
    holder = None if route_table.is_shared(lock) else (lock or {}).get(naming.A_HOLDER, {}).get("S")
    if holder:
        holding = _session_item(config, holder)
        if holding and _is_live(holding, common.now()):
            _force_out(config, caller, options, session_id, [(holding, f"stack {options.stack_name}")],
                       naming.route_tag(session_id))
    now = common.now()
    live = [e for e in route_table.stage_entries(lock)
            if _is_live(_session_item(config, e.session_id) or {}, now)]
    if len(live) >= naming.MAX_SHARED_SESSIONS:
        raise Refused(f"stack {options.stack_name} has {len(live)} live sessions on its shared "
                      f"stage, the most plldb allows ({naming.MAX_SHARED_SESSIONS})")
    entry = route_table.entry_attribute(options.routes, now * 1000, caller.arn, options.mirror)
    try:
        stage_table.join(config, options.stack_name, session_id, entry, holder)
    except stage_table.StageRefused as exc:
        raise Refused(str(exc)) from exc
    item = _session_record(caller, session_id, options, connection_id, nonce)
    item[naming.A_ROUTES] = {"L": [{"S": route} for route in options.routes]}
    item[naming.A_MIRROR] = {"BOOL": options.mirror}
    _put_unless(config, item, _NEW_KEY, f"session {session_id} was created meanwhile")
    log.info("session %s joined the shared stage of %s for %s (routes %s%s)", session_id,
             options.stack_name, caller.arn, options.routes or "all", ", mirror" if options.mirror else "")


def _force_out(config: common.Config, caller: Caller, options: Options, new_session: str,
               holders: list[tuple[dict[str, Any], str]], claim_key: str) -> None:
    """Close the live sessions ``holders`` for the new session, if ``force=1`` and the
    caller claimed (``claim_key``) every function they debug; Refused otherwise."""
    for item, what in holders:
        owner = item.get(naming.A_CREATED_BY, {}).get("S", "")
        if not options.force:
            raise Refused(f"{what} is attached by {owner} (no force)")
        session_id = item[naming.A_SESSION_ID]["S"]
        unclaimed = _not_claimed_by(config, caller, new_session, _records_of(config, item),
                                    claim_key)
        if unclaimed:
            raise Refused(
                f"--force takes {what} from {owner} only for a caller who claimed its functions "
                f"first (plldb attach tags them): {', '.join(unclaimed)} not claimed by {caller.arn}"
            )
        log.info("closing session %s of %s for %s", session_id, owner, caller.arn)
        Records(common.client("dynamodb"), config.sessions_table).close_session(session_id, None)


def _resume(
    config: common.Config, caller: Caller, session_id: str, connection_id: str, nonce: str
) -> str:
    """A reconnect: only the creator, and only while the session is live."""
    now = common.now()
    try:
        result = common.client("dynamodb").update_item(
            TableName=config.sessions_table,
            Key={naming.A_SESSION_ID: {"S": session_id}},
            ConditionExpression=(
                "#kind = :session AND #by = :caller AND #status IN (:p, :a, :d) AND #ttl > :now"
                " AND (attribute_not_exists(#proof_at) OR #proof_at <= :signed_at)"
            ),
            UpdateExpression=(
                "SET #status = :a, #conn = :conn, #ttl = :ttl, #proof_at = :signed_at, "
                "#nonce = :nonce"
            ),
            ExpressionAttributeNames={
                "#kind": naming.A_KIND,
                "#by": naming.A_CREATED_BY,
                "#status": naming.A_STATUS,
                "#ttl": naming.A_TTL,
                "#conn": naming.A_CONNECTION_ID,
                "#proof_at": naming.A_PROOF_AT,
                "#nonce": naming.A_INSTRUMENT_NONCE,
            },
            ExpressionAttributeValues={
                ":session": {"S": naming.KIND_SESSION},
                ":caller": {"S": caller.arn},
                ":signed_at": {"N": str(int(caller.signed_at))},
                ":nonce": {"S": naming.nonce_digest(nonce)},
                ":p": {"S": naming.PENDING},
                ":a": {"S": naming.ACTIVE},
                ":d": {"S": naming.DISCONNECTED},
                ":now": {"N": str(now)},
                ":ttl": {"N": str(now + limits.SESSION_TTL_SECONDS)},
                ":conn": {"S": connection_id},
            },
            ReturnValues="ALL_NEW",
        )
    except botocore.exceptions.ClientError as exc:
        if common.error_code(exc) == "ConditionalCheckFailedException":
            raise Refused(
                f"session {session_id} is over, was not created by {caller.arn}, or was "
                "resumed with a newer proof"
            ) from exc
        raise
    return result["Attributes"].get(naming.A_STACK_NAME, {}).get("S", "")


def _make_room(
    config: common.Config, caller: Caller, options: Options, new_session: str
) -> str | None:
    """Close the stack's live sessions that may be replaced; refuse if one may not. Returns
    the session the stack's lock names (None: no lock yet), for :func:`_create`'s write.

    The lock item is read consistently: it is what keeps two racing attaches apart (the
    StackNameIndex query may lag behind). For a by-name session, a live session that
    instrumented one of its functions counts too (sets of names may overlap, and a stack's
    function may be named).
    """
    holders = [(item, f"stack {options.stack_name}") for item in _live_sessions(config, options.stack_name)]
    lock = stage_table.read(config, options.stack_name)
    seen = naming.MODE_SHARED if route_table.is_shared(lock) else (
        (lock or {}).get(naming.A_HOLDER, {}).get("S"))
    known = {h[naming.A_SESSION_ID]["S"] for h, _ in holders}
    lock_holders = [e.session_id for e in route_table.stage_entries(lock)] or [seen]
    for candidate in [c for c in lock_holders if c and c not in known]:
        holder = _session_item(config, candidate)
        if holder and _is_live(holder, common.now()):
            holders.append((holder, f"stack {options.stack_name}"))
            known.add(candidate)
    holders += _holders_of_names(config, options.names, known)
    _force_out(config, caller, options, new_session, holders, naming.CLAIM_TAG)
    return seen


def _not_claimed_by(
    config: common.Config, caller: Caller, new_session: str, records: list[dict[str, Any]],
    claim_key: str,
) -> list[str]:
    """The functions of ``records`` that do not carry the caller's claim for
    ``new_session`` under ``claim_key``: taking a session over needs the right to claim what
    it debugs, which ``plldb attach`` exercises (lambda:TagResource) before it connects
    (docs/security.md)."""
    wanted = naming.claim_value(caller.arn, new_session)
    lambda_ = common.client("lambda")
    unclaimed = []
    for record in records:
        tags = lambda_.list_tags(Resource=record[naming.A_FUNCTION_ARN]["S"]).get("Tags", {})
        if tags.get(claim_key) != wanted:
            unclaimed.append(record[naming.A_FUNCTION_NAME]["S"])
    return sorted(unclaimed)


def _records_of(config: common.Config, session: dict[str, Any]) -> list[dict[str, Any]]:
    """The instrumentation records of a session (found by the stack they name): its own,
    or its shared stage's."""
    stack = session.get(naming.A_STACK_NAME, {}).get("S", "")
    owner = stage.owner_of(session, session[naming.A_SESSION_ID]["S"])
    items = _query_stack(config, stack) if stack else []
    return [
        item for item in items
        if item.get(naming.A_KIND, {}).get("S") == naming.KIND_INSTRUMENTATION
        and item.get(naming.A_INSTRUMENTED_BY, {}).get("S") == owner
        and naming.A_FUNCTION_ARN in item
    ]


def _take_lock(
    config: common.Config, stack_name: str, session_id: str, ttl: dict[str, str], seen: str | None
) -> None:
    """One conditional write: the lock is absent, or still names ``seen`` (or is still a
    shared stage's, whose sessions :func:`_make_room` closed)."""
    condition = _NEW_KEY
    if seen == naming.MODE_SHARED:
        condition = {"ConditionExpression": "#mode = :shared",
                     "ExpressionAttributeNames": {"#mode": naming.A_MODE},
                     "ExpressionAttributeValues": {":shared": {"S": naming.MODE_SHARED}}}
    elif seen:
        condition = {"ConditionExpression": "#holder = :seen",
                     "ExpressionAttributeNames": {"#holder": naming.A_HOLDER},
                     "ExpressionAttributeValues": {":seen": {"S": seen}}}
    lock = {
        **stage_table.key(stack_name),
        naming.A_KIND: {"S": naming.KIND_STACK_LOCK},
        naming.A_HOLDER: {"S": session_id},
        naming.A_TTL: ttl,
    }
    _put_unless(config, lock, condition,
                f"stack {stack_name}: another attach took it meanwhile: plldb status shows who")


def _put_unless(config: common.Config, item: dict[str, Any], condition: dict[str, Any],
                refusal: str) -> None:
    """One conditional write to the sessions table; Refused(``refusal``) when it fails."""
    try:
        common.client("dynamodb").put_item(TableName=config.sessions_table, Item=item, **condition)
    except botocore.exceptions.ClientError as exc:
        if common.error_code(exc) == "ConditionalCheckFailedException":
            raise Refused(refusal) from exc
        raise


def _session_item(config: common.Config, session_id: str) -> dict[str, Any] | None:
    return common.client("dynamodb").get_item(
        TableName=config.sessions_table, Key={naming.A_SESSION_ID: {"S": session_id}},
        ConsistentRead=True,
    ).get("Item")


def _holders_of_names(
    config: common.Config, names: list[str], known: set[str]
) -> list[tuple[dict[str, Any], str]]:
    """(session, "function <name>") of each live session, not in ``known``, whose
    instrumentation record holds one of ``names``."""
    table = common.client("dynamodb")
    found: list[tuple[dict[str, Any], str]] = []
    for name in names:
        record = table.get_item(
            TableName=config.sessions_table,
            Key={naming.A_SESSION_ID: {"S": naming.function_key(name)}},
            ConsistentRead=True,
        ).get("Item", {})
        holder = record.get(naming.A_INSTRUMENTED_BY, {}).get("S")
        if not holder or holder in known:
            continue
        session = table.get_item(
            TableName=config.sessions_table, Key={naming.A_SESSION_ID: {"S": holder}}, ConsistentRead=True
        ).get("Item")
        if session and _is_live(session, common.now()):
            known.add(holder)
            found.append((session, f"function {name}"))
    return found


def _is_live(item: dict[str, Any], now: int) -> bool:
    return (
        item.get(naming.A_KIND, {}).get("S") == naming.KIND_SESSION
        and item.get(naming.A_STATUS, {}).get("S") in LIVE
        and not naming.ttl_expired(item.get(naming.A_TTL, {}).get("N"), now)
    )


def _live_sessions(config: common.Config, stack_name: str) -> list[dict[str, Any]]:
    now = common.now()
    return [item for item in _query_stack(config, stack_name) if _is_live(item, now)]


def _query_stack(config: common.Config, stack_name: str) -> list[dict[str, Any]]:
    """Every item StackNameIndex holds for ``stack_name`` (sessions and their records)."""
    items: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {
        "TableName": config.sessions_table,
        "IndexName": naming.STACK_NAME_INDEX,
        "KeyConditionExpression": "#stack = :stack",
        "ExpressionAttributeNames": {"#stack": naming.A_STACK_NAME},
        "ExpressionAttributeValues": {":stack": {"S": stack_name}},
    }
    while True:
        page = common.client("dynamodb").query(**arguments)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _create(
    config: common.Config,
    caller: Caller,
    session_id: str,
    options: Options,
    connection_id: str,
    nonce: str,
    seen: str | None,
) -> None:
    """Take the stack's lock, then write the session. The lock must still name the session
    :func:`_make_room` saw (or be absent), so of two attaches racing for a stack only one
    gets it; a lock left naming a session that was never written (a crash in between) is
    taken over like one naming a session that is over."""
    item = _session_record(caller, session_id, options, connection_id, nonce)
    _take_lock(config, options.stack_name, session_id, item[naming.A_TTL], seen)
    _put_unless(config, item, _NEW_KEY, f"session {session_id} was created meanwhile")
    log.info("session %s of %s opened for %s", session_id, options.stack_name, caller.arn)


def _session_record(caller: Caller, session_id: str, options: Options, connection_id: str,
                    nonce: str) -> dict[str, Any]:
    """The new session's item: ACTIVE on this connection, owned by the caller."""
    now = common.now()
    item: dict[str, Any] = {
        naming.A_SESSION_ID: {"S": session_id},
        naming.A_KIND: {"S": naming.KIND_SESSION},
        naming.A_STACK_NAME: {"S": options.stack_name},
        naming.A_STATUS: {"S": naming.ACTIVE},
        naming.A_CONNECTION_ID: {"S": connection_id},
        naming.A_TTL: {"N": str(now + limits.SESSION_TTL_SECONDS)},
        naming.A_CREATED_AT: {"S": common.iso_now()},
        naming.A_CREATED_BY: {"S": caller.arn},
        naming.A_PROOF_AT: {"N": str(int(caller.signed_at))},
        naming.A_INSTRUMENT_NONCE: {"S": naming.nonce_digest(nonce)},
    }
    if options.functions:
        item[naming.A_FUNCTIONS] = {"L": [{"S": glob} for glob in options.functions]}
    if options.names:
        item[naming.A_NAMES] = {"L": [{"S": name} for name in sorted(set(options.names))]}
    if options.timeout is not None:
        item[naming.A_TIMEOUT] = {"N": str(options.timeout)}
    return item
