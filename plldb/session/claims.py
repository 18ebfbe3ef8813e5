"""Claiming the functions to debug, with the developer's own credentials.

IAM decides who may debug what (docs/security.md): before connecting, ``plldb attach`` tags
each function it will run locally with ``plldb:claim``, a value bound to the caller's ARN
and the session id. The manager instruments only functions whose tag matches the session's
authenticated creator, so a principal that may not tag (change) a function cannot debug
it, and copying someone else's tag value does not help. The manager removes the tag when
it restores the function.

A session of a shared stage (``--route``/``--mirror``) claims under a key of its own,
``plldb:route:<session id>``, and marks the function ``plldb:shared``: several developers'
claims on one function then never overwrite each other (plldb/naming.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from plldb import naming
from plldb.cloud.aws import AwsContext, error_code

log = logging.getLogger(__name__)

MAX_PARALLEL_TAGS = 8
REFUSED = ("AccessDeniedException", "AccessDenied")
T = TypeVar("T")


class ClaimRefused(Exception):
    """IAM refused to let the developer tag a function: plldb must not debug it."""


def function_arn(caller_arn: str, region: str, function_name: str) -> str:
    """The ARN of a function of the caller's own account (partition from the caller's ARN)."""
    _, partition, _, _, account = caller_arn.split(":")[:5]
    return f"arn:{partition}:lambda:{region}:{account}:function:{function_name}"


def claim_tags(caller_arn: str, session_id: str, shared: bool) -> dict[str, str]:
    """The tags that claim a function for this session."""
    value = naming.claim_value(caller_arn, session_id)
    if shared:
        return {naming.SHARED_TAG: naming.SHARED_TAG_VALUE, naming.route_tag(session_id): value}
    return {naming.CLAIM_TAG: value}


def claim_functions(
    ctx: AwsContext, caller_arn: str, session_id: str, function_names: Iterable[str],
    shared: bool = False,
) -> None:
    """Tag every function with this session's claim; any refusal is a ClaimRefused.

    Tags are set in parallel (one TagResource each). A refusal names every function that
    could not be claimed and the permission that is missing, so the developer knows whether
    to ask for rights or to debug fewer functions (``--function``).
    """
    tags = claim_tags(caller_arn, session_id, shared)
    client = ctx.client("lambda")
    names = sorted(function_names)

    def claim(name: str) -> str | None:
        try:
            client.tag_resource(
                Resource=function_arn(caller_arn, ctx.region_name, name), Tags=tags
            )
        except Exception as exc:
            if error_code(exc) in REFUSED:
                return name
            raise
        log.info("claimed %s for session %s", name, session_id)
        return None

    refused = [name for name in _in_parallel(claim, names) if name]
    if refused:
        release_claims(ctx, caller_arn, [n for n in names if n not in refused],
                       session_id, shared)
        raise ClaimRefused(
            f"{caller_arn} may not change {', '.join(refused)} (lambda:TagResource was "
            "refused): plldb debugs only functions your own credentials may change. Ask for "
            "the rights in docs/iam/plldb-developer-policy.json, or leave these functions out "
            "with --function. Nothing was changed"
        )


def release_claims(ctx: AwsContext, caller_arn: str, function_names: Iterable[str],
                   session_id: str, shared: bool = False) -> None:
    """Remove this attach's claims when it ends before the manager took the functions over.

    Best effort (logged): the manager removes claims of functions it restores, and a claim
    without a session grants nothing. A shared attach removes only its own route claim:
    the ``plldb:shared`` mark may be another developer's stage's, whose restore needs it
    (a mark left without a stage grants nothing either).
    """
    client = ctx.client("lambda")
    keys = [naming.route_tag(session_id)] if shared else [naming.CLAIM_TAG]

    def release(name: str) -> None:
        try:
            client.untag_resource(
                Resource=function_arn(caller_arn, ctx.region_name, name), TagKeys=keys
            )
        except Exception as exc:
            log.warning("could not remove the plldb claim tag from %s: %s", name, exc)

    list(_in_parallel(release, sorted(function_names)))


def _in_parallel(work: Callable[[str], T], names: list[str]) -> list[T]:
    """One Lambda call per function, a few at a time: each takes ~0.1 s in AWS."""
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_TAGS, len(names))) as pool:
        return list(pool.map(work, names))
