"""The shipped developer policy, and that policy narrowed the way the README tells an
administrator to narrow it.

docs/iam/plldb-developer-policy.json ships with a claim statement that matches no function
(``function:REPLACE-WITH-YOUR-STACK-*``): an administrator replaces the placeholder with the
functions a developer may debug (``function:my-stack-*``, one ARN per stack or name). The
local cloud's developer, the call audit and the attack tests all hold the policy narrowed
here, so the tests run with what an administrator would really grant.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).resolve().parents[2] / "docs" / "iam" / "plldb-developer-policy.json"
PLACEHOLDER = "REPLACE-WITH-YOUR-STACK-*"
CLAIM_STATEMENT = "ClaimFunctionsToDebug"
FUNCTION_ARN = "arn:aws:lambda:*:*:function:"


def shipped(path: Path = SHIPPED) -> dict[str, Any]:
    """The policy file exactly as plldb ships it."""
    return json.loads(path.read_text())


def narrowed(functions: Iterable[str], path: Path = SHIPPED) -> dict[str, Any]:
    """The shipped policy with the claim statement's placeholder replaced by one function
    ARN per name pattern in ``functions`` (e.g. ``my-stack-*``), and nothing else changed."""
    document = shipped(path)
    claim = _claim(document)
    if claim["Resource"] != FUNCTION_ARN + PLACEHOLDER:
        raise ValueError(f"the claim statement of {path} no longer names {PLACEHOLDER}")
    claim["Resource"] = [FUNCTION_ARN + pattern for pattern in functions]
    return document


def is_narrowed(document: Any, path: Path = SHIPPED) -> bool:
    """Whether ``document`` is the shipped policy, narrowed (or not) as the README says:
    equal to it in everything but the claim statement's function resources."""
    documented = shipped(path)
    if document == documented:
        return True
    if not isinstance(document, dict):
        return False
    try:
        mine, theirs = _without_claim_resource(document), _without_claim_resource(documented)
    except (KeyError, StopIteration, TypeError):
        return False
    return mine == theirs


def _claim(document: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in document["Statement"] if s.get("Sid") == CLAIM_STATEMENT)


def _without_claim_resource(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` whose claim statement has no Resource (its function ARNs only)."""
    stripped = copy.deepcopy(document)
    claim = _claim(stripped)
    resources = claim.pop("Resource")
    for resource in [resources] if isinstance(resources, str) else resources:
        if not resource.startswith(FUNCTION_ARN):
            raise TypeError(f"claim resource {resource} is not a function ARN")
    return stripped
