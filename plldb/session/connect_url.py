"""The URL ``plldb attach`` opens, held to API Gateway's limit on its length.

The session's request travels in the query string (the authorizer reads it on ``$connect``):
``--function`` globs and by-name function names, percent-encoded. API Gateway refuses a
WebSocket API URL of more than 4,096 characters (docs/aws-limits.md), before plldb's
authorizer could say why, so the length is checked here, before anything changes.
"""

from __future__ import annotations

import urllib.parse

from plldb import limits, naming


class ConnectUrlTooLong(Exception):
    """The session's request does not fit in the URL API Gateway accepts."""


def connect_url(websocket_url: str, query: dict[str, str]) -> str:
    """The URL to open: the helper stack's WebSocket URL with the session's query."""
    separator = "&" if "?" in websocket_url else "?"
    return f"{websocket_url}{separator}{urllib.parse.urlencode(query)}"


def check_length(websocket_url: str, query: dict[str, str]) -> None:
    """ConnectUrlTooLong, naming what to shorten, when the URL is over API Gateway's limit."""
    length = len(connect_url(websocket_url, query))
    over = length - limits.WEBSOCKET_URL_LIMIT
    if over <= 0:
        return
    head = (
        f"the WebSocket URL would be {length} characters, {over} over API Gateway's "
        f"{limits.WEBSOCKET_URL_LIMIT}-character limit"
    )
    if query.get(naming.Q_NAMES):
        raise ConnectUrlTooLong(
            f"{head}: the function names of a by-name session travel in it; "
            "debug fewer functions per session"
        )
    globs = [g for g in query.get(naming.Q_FUNCTIONS, "").split(",") if g]
    raise ConnectUrlTooLong(f"{head}: {_shorten(globs, over)}")


def _shorten(globs: list[str], over: int) -> str:
    """Which --function globs to shorten or drop: the longest ones, until the URL fits."""
    if not globs:
        return "the stack name and session alone are too long"
    longest = sorted(globs, key=_encoded_length, reverse=True)
    chosen, saved = [], 0
    for glob in longest:
        chosen.append(glob)
        saved += _encoded_length(glob)
        if saved >= over:
            break
    named = ", ".join(chosen)
    return (
        f"shorten or drop these --function globs ({len(chosen)} of {len(globs)}, "
        f"each counted percent-encoded): {named}; a glob such as 'Orders*' matches many "
        "functions in few characters"
    )


def _encoded_length(glob: str) -> int:
    """Characters a glob takes in the query (percent-encoded, with its comma)."""
    return len(urllib.parse.quote_plus(glob)) + len(urllib.parse.quote_plus(","))
