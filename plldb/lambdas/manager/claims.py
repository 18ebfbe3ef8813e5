"""Claims: the manager instruments only functions the session's creator tagged for it.

``plldb attach`` tags each function it will debug, with the developer's own credentials,
``plldb:claim = claim_value(<caller ARN>, <session id>)`` (docs/security.md, "What may be
debugged"). A principal that may not tag a function cannot produce the tag, and a copied
value does not help: it is bound to its creator's ARN and session. The manager's policy
lets it update and untag only functions that carry a claim tag at all; this module checks
that the tag is this session's.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from plldb import naming
from plldb.lambdas import common
from plldb.lambdas.common import log


class Claims:
    """The claim check for one session, and the claim's removal on restore."""

    def __init__(self, lambda_: Any) -> None:
        self.lambda_ = lambda_

    def tag(self, function_arn: str) -> str | None:
        """The function's claim tag value, or None when it has none."""
        tags = self.lambda_.list_tags(Resource=function_arn).get("Tags", {})
        return tags.get(naming.CLAIM_TAG)

    def unclaimed(
        self, function_arn: str, session: dict[str, Any] | None, session_id: str
    ) -> str | None:
        """Why this session may not instrument the function, or None when it claimed it."""
        creator = _creator(session)
        if not creator:
            return (
                f"session {session_id} names no creator: plldb instruments only claimed functions"
            )
        if self.tag(function_arn) != naming.claim_value(creator, session_id):
            return (
                f"not claimed by {creator} for this session: plldb debugs only functions your "
                f"own credentials could tag ({naming.CLAIM_TAG}, lambda:TagResource); "
                "see docs/security.md"
            )
        return None

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
