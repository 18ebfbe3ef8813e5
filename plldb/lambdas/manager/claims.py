"""Claims: the manager instruments only functions the session's creator tagged for it.

``plldb attach`` tags each function it will debug, with the developer's own credentials,
``plldb:claim = claim_value(<caller ARN>, <session id>)`` (docs/security.md, "What may be
debugged"). A principal that may not tag a function cannot produce the tag, and a copied
value does not help: it is bound to its creator's ARN and session. The manager's policy
lets it update and untag only functions that carry a claim tag at all; this module checks
that the tag is this session's.

A session of a shared stage claims under a key of its own, ``plldb:route:<session id>``,
next to the stage's mark ``plldb:shared`` (plldb/naming.py): several developers' claims on
one function then never overwrite each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.exceptions

from plldb import naming
from plldb.lambdas import common
from plldb.lambdas.common import log


class Claims:
    """The claim check for one session, and the claim's removal on restore."""

    def __init__(self, lambda_: Any) -> None:
        self.lambda_ = lambda_

    def tags(self, function_arn: str) -> dict[str, str]:
        return self.lambda_.list_tags(Resource=function_arn).get("Tags", {})

    def tag(self, function_arn: str) -> str | None:
        """The function's claim tag value, or None when it has none."""
        return self.tags(function_arn).get(naming.CLAIM_TAG)

    def unclaimed(
        self, function_arn: str, session: dict[str, Any] | None, session_id: str,
        key: str = naming.CLAIM_TAG,
    ) -> str | None:
        """Why this session may not instrument the function, or None when it claimed it
        (under ``key``: a shared stage's session claims under its route key)."""
        creator = _creator(session)
        if not creator:
            return (
                f"session {session_id} names no creator: plldb instruments only claimed functions"
            )
        tags = self.tags(function_arn)
        if tags.get(key) != naming.claim_value(creator, session_id):
            return (
                f"not claimed by {creator} for this session: plldb debugs only functions your "
                f"own credentials could tag ({key}, lambda:TagResource); see docs/security.md"
            )
        if key != naming.CLAIM_TAG and naming.SHARED_TAG not in tags:
            return f"not marked {naming.SHARED_TAG}: plldb attach --route sets it with the claim"
        return None

    def release_keys(self, function_arn: str, keys: list[str]) -> None:
        """Remove those of ``keys`` the function carries."""
        self._untag(function_arn, lambda key: key in keys)

    def release_stage(self, function_arn: str) -> None:
        """A restored shared stage's function: remove the shared mark and every route claim
        left on it (all of plldb's; the sessions are over)."""
        self._untag(function_arn, lambda key: key == naming.SHARED_TAG
                    or key.startswith(naming.ROUTE_TAG_PREFIX))

    def _untag(self, function_arn: str, wanted: Callable[[str], bool]) -> None:
        """Remove the function's tags ``wanted`` selects (a function deleted meanwhile has
        none)."""
        try:
            keys = [key for key in self.tags(function_arn) if wanted(key)]
            if keys:
                self.lambda_.untag_resource(Resource=function_arn, TagKeys=keys)
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "ResourceNotFoundException":
                raise

    def release(self, function_arn: str, session_id: str, session: dict[str, Any] | None) -> None:
        """Remove the claim tag if it is still this session's (another may have re-claimed it).

        Called after the configuration is restored: the manager may update only a function
        that still carries a claim tag. Without the session item (past its TTL) nobody can
        tell whose claim it is, so the tag stays; it lets no one else instrument the function.
        """
        creator = _creator(session)
        if not creator:
            log.info("%s: session %s is gone: its claim tag is left", function_arn, session_id)
            return
        try:
            value = self.tag(function_arn)
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) == "ResourceNotFoundException":
                return
            raise
        if value is None or value != naming.claim_value(creator, session_id):
            log.info("%s: claim is not session %s's any more: left", function_arn, session_id)
            return
        self.lambda_.untag_resource(Resource=function_arn, TagKeys=[naming.CLAIM_TAG])


def _creator(session: dict[str, Any] | None) -> str:
    """The session's CreatedBy: the caller the authorizer authenticated."""
    return (session or {}).get(naming.A_CREATED_BY, {}).get("S", "")
