"""What `plldb attach` prints for the helper stack's messages (issue 12, item 3).

An :class:`Attachment` is built for real (boto3 clients are created but never called) and
fed the messages the helper stack sends; the console output is what is checked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from plldb import protocol as p
from plldb.cloud.aws import AwsContext
from plldb.cloud.helper_stack import HelperStack
from plldb.project.model import LocalFunction
from plldb.session.attach import Attachment
from plldb.session.plan import AttachOptions, AttachPlan

NODE = "shop-NodeFunction-1A2B"
HELLO = "shop-HelloFunction-3C4D"


@pytest.fixture
def attachment(tmp_path: Path) -> Attachment:
    ctx = AwsContext(region="us-east-1")
    helper = HelperStack(**{name: name for name in HelperStack.__dataclass_fields__})
    hello = LocalFunction("HelloFunction", "app.handler", "python3.11", tmp_path, (tmp_path,))
    plan = AttachPlan(helper=helper, functions={HELLO: hello}, caller_arn="arn:me",
                      debugger_ctx=ctx, warnings=[f"{NODE}: not debugged (runtime nodejs20.x)"],
                      skipped=frozenset({NODE}))
    return Attachment(ctx, AttachOptions(stack_name="shop", template=tmp_path), plan)


def feed(attachment: Attachment, message: dict[str, Any]) -> None:
    asyncio.run(attachment.on_message(message))


def test_a_function_skipped_while_planning_is_not_reported_again(
    attachment: Attachment, capsys: pytest.CaptureFixture[str]
) -> None:
    feed(attachment, p.progress_message("instrument", "runtime nodejs20.x is not Python",
                                        status="skipped", function=NODE))
    feed(attachment, p.progress_message("instrument", "already has 5 layers",
                                        status="skipped", function="shop-Other"))
    captured = capsys.readouterr()
    assert NODE not in captured.out + captured.err
    assert "warning: shop-Other: already has 5 layers" in captured.err


def test_a_late_answer_is_one_plain_line(
    attachment: Attachment, capsys: pytest.CaptureFixture[str]
) -> None:
    attachment.answers["r-late"] = p.error_message("r-late", {"errorMessage": "x"})
    feed(attachment, p.rejected_message("request r-late is not a pending request of this session"))
    feed(attachment, p.rejected_message("message over the limit [sic]"))
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "warning: r-late: answered too late, the function had already returned a timeout "
        "error to its caller (a longer --timeout gives more time at a breakpoint)",
        "warning: the helper stack refused a message: message over the limit [sic]",
    ]


def test_the_invocation_line_shows_the_whole_error(
    attachment: Attachment, capsys: pytest.CaptureFixture[str]
) -> None:
    class Failed:
        ok = False
        error = {"errorType": "ValueError", "errorMessage": "refused [" + "because " * 30 + "]"}

    attachment.print_invocation({"function_name": HELLO, "request_id": "r-1"}, Failed(), 0.25)
    out = " ".join(capsys.readouterr().out.split())
    assert "HelloFunction r-1 250 ms ValueError: refused [" + "because " * 29 + "because ]" in out
