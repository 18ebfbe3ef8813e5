"""The shipped developer policy, as shipped and as the README tells an administrator to
narrow it: tagging is debugging with plldb, so the file must not let anyone tag (debug) a
function before an administrator names the functions, and never lets a developer add or
remove any tag but plldb's claim (docs/security.md, "What may be debugged: claim tags")."""

from __future__ import annotations

from pathlib import Path

import pytest

from plldb import naming
from tests.harness import developer_policy
from tests.harness.iam_policy import Request, evaluate

README = Path(__file__).resolve().parents[1] / "README.md"
FUNCTION = "arn:aws:lambda:eu-west-1:123456789012:function:"
TAG_ACTIONS = ("lambda:TagResource", "lambda:UntagResource")


def _allows(policy: dict, action: str, function: str, keys: list[str] | None) -> bool:
    context = {} if keys is None else {"aws:TagKeys": keys}
    return evaluate([policy], Request(action, FUNCTION + function, context)).allowed


@pytest.mark.parametrize("action", TAG_ACTIONS)
@pytest.mark.parametrize("function", ["my-stack-Orders-1A2B", "plldb-manager", "anything"])
def test_the_shipped_file_lets_nobody_claim_any_function(action: str, function: str) -> None:
    """Attached as shipped, before an administrator names the functions: no claim anywhere."""
    assert not _allows(developer_policy.shipped(), action, function, [naming.CLAIM_TAG])


@pytest.mark.parametrize("action", TAG_ACTIONS)
def test_narrowed_it_claims_the_named_functions_only(action: str) -> None:
    policy = developer_policy.narrowed(["my-stack-*"])
    assert _allows(policy, action, "my-stack-Orders-1A2B", [naming.CLAIM_TAG])
    assert not _allows(policy, action, "other-stack-Orders-1A2B", [naming.CLAIM_TAG])


@pytest.mark.parametrize("action", TAG_ACTIONS)
@pytest.mark.parametrize("keys", [["owner"], [naming.CLAIM_TAG, "owner"], ["plldb:claimx"], None])
def test_no_tag_but_the_claim_can_be_added_or_removed(action: str, keys: list[str] | None) -> None:
    """Even on its own functions, a developer changes no other tag (an ABAC tag, a cost
    tag, a tag another policy's condition trusts), and a request naming no keys is refused."""
    policy = developer_policy.narrowed(["my-stack-*"])
    assert not _allows(policy, action, "my-stack-Orders-1A2B", keys)


def test_the_readme_tells_the_administrator_what_to_replace() -> None:
    text = " ".join(README.read_text().split())
    assert developer_policy.PLACEHOLDER in text
    assert "aws:TagKeys" in text
