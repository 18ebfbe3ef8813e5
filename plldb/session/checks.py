"""What attach checks in an invocation message before it runs anything.

A message reaches this machine over the session's own connection, but the connection is
not the only thing that vouches for it: whatever posts to it (the shim, in the function)
also chooses the session id, the URLs, the environment and the credentials in it. Before a
handler runs with them, attach checks each (docs/security.md, "The laptop checks what it
runs"):

- the message is for this session: another session's invocation is not run and not
  answered (an answer could only go through this session's ``$default``, which accepts
  answers to this session's requests only; the request's own session answers it, or it
  times out there);
- payload URLs open this request's object of the helper stack's bucket on S3, nothing else
  (:class:`plldb.session.payloads.PayloadPlace`);
- with ``--credentials function`` the message carries the function's credentials: without
  them the handler's SDK would find the developer's own (``~/.aws``), so it is refused;
- variables that would redirect the SDK are dropped (:mod:`plldb.local.redirects`).

A refused invocation that belongs to this session is answered at once with the reason, so
its caller gets an error instead of waiting for the deadline.
"""

from __future__ import annotations

from typing import Any

from plldb import naming
from plldb.local import redirects
from plldb.local.executor import CREDENTIALS_FUNCTION
from plldb.session import payloads

NO_CREDENTIALS_ERROR = "PLLDB.NoCredentials"
REQUIRED_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def foreign_session(message: dict[str, Any], session_id: str) -> str | None:
    """The line to show when ``message`` is another session's invocation, else None."""
    theirs = message["session_id"]
    if theirs == session_id:
        return None
    return (
        f"refused invocation {message['request_id']} of {message['function_name']}: it is for "
        f"session {theirs}, not this session {session_id}; not run and not answered. Something "
        "posted another session's invocation to this session's connection: report it, with "
        "this request id, to whoever runs the helper stack"
    )


def credentials_problem(message: dict[str, Any], mode: str) -> dict[str, Any] | None:
    """The error to answer when the handler would run without the function's credentials."""
    if mode != CREDENTIALS_FUNCTION:
        return None
    environment = message["environment"]
    missing = [name for name in REQUIRED_CREDENTIALS if not environment.get(name)]
    if not missing:
        return None
    text = (
        f"the invocation of {message['function_name']} carries no {' and no '.join(missing)} of "
        "the function: plldb does not run it with your own credentials instead. Update the "
        "helper stack (`plldb bootstrap`), or attach with --credentials local to run handlers "
        "with your profile's credentials on purpose"
    )
    return {"errorMessage": text, "errorType": NO_CREDENTIALS_ERROR, "stackTrace": []}


def payload_problem(
    message: dict[str, Any], place: payloads.PayloadPlace, session_id: str
) -> payloads.PayloadError | None:
    """Why a payload URL of ``message`` must not be used (nothing is fetched then), or None."""
    request_id = message["request_id"]
    wanted = (("event_ref", "event"), ("result_upload", "response"))
    try:
        for field, direction in wanted:
            if field in message:
                expected = _expected_key(message[field], session_id, request_id, direction)
                payloads.check_url(place, message[field], field, expected)
    except payloads.PayloadError as exc:
        return exc
    return None


def _expected_key(ref: Any, session_id: str, request_id: str, direction: str) -> str:
    """This request's object under the function's own prefix (``payloads/<its aws:userid>/``,
    the only one its presigned URLs may open); the prefix is taken from the reference."""
    key = ref.get("key") if isinstance(ref, dict) else None
    owner = "<function aws:userid>"
    if isinstance(key, str) and key.startswith(naming.PAYLOAD_PREFIX):
        owner = key[len(naming.PAYLOAD_PREFIX):].split("/", 1)[0] or owner
    return naming.payload_key(owner, session_id, request_id, direction)


def without_redirects(message: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``message`` whose environment has no redirecting variable, and the names dropped."""
    environment = message["environment"]
    dropped = redirects.redirecting(environment)
    if not dropped:
        return message, []
    return {**message, "environment": redirects.without_redirects(environment)}, dropped
