"""What ``plldb attach`` asks for in the ``$connect`` query string, validated.

Everything here comes from the client: a malformed value is a Refused (the connect is
denied and the reason logged), never an exception that reaches API Gateway.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from plldb import limits, naming, routing

_STACK_NAME = re.compile(r"^[A-Za-z][-A-Za-z0-9]{0,127}$")
_FUNCTION_GLOB = re.compile(r"^[A-Za-z0-9_*?\[\]!.:-]{1,140}$")
MAX_FUNCTION_GLOBS = 50
class Refused(Exception):
    """The connect may not open this session; the text says why (logged, never sent)."""


@dataclass(frozen=True)
class Options:
    """What ``plldb attach`` asks for in the ``$connect`` query string."""

    stack_name: str
    functions: list[str]
    timeout: int | None
    force: bool
    names: list[str]
    routes: list[str]
    mirror: bool

    @property
    def shared(self) -> bool:
        """A session of a shared stage: it takes only what its routes match."""
        return bool(self.routes) or self.mirror

    @classmethod
    def from_query(cls, query: dict[str, Any]) -> Options:
        names = [n for n in str(query.get(naming.Q_NAMES) or "").split(",") if n]
        stack_name = query.get(naming.Q_STACK_NAME)
        if names:
            stack_name = _by_name_key(names, stack_name, query.get(naming.Q_FUNCTIONS))
        elif not isinstance(stack_name, str) or not _STACK_NAME.match(stack_name):
            raise Refused("missing or malformed stackName")
        globs = [g for g in str(query.get(naming.Q_FUNCTIONS) or "").split(",") if g]
        if len(globs) > MAX_FUNCTION_GLOBS or not all(_FUNCTION_GLOB.match(g) for g in globs):
            raise Refused("malformed functions filter")
        raw_timeout = query.get(naming.Q_TIMEOUT)
        timeout = None
        if raw_timeout not in (None, ""):
            if not str(raw_timeout).isdigit() or not 1 <= int(raw_timeout) <= limits.MAX_TIMEOUT:
                raise Refused("timeout must be 1..900 seconds")
            timeout = int(raw_timeout)
        return cls(stack_name, globs, timeout, query.get(naming.Q_FORCE) == "1", names,
                   _routes(query.get(naming.Q_ROUTES)), query.get(naming.Q_MIRROR) == "1")


def _routes(raw: Any) -> list[str]:
    """The canonical route expressions of ``routes=`` (a JSON list), validated."""
    if raw in (None, ""):
        return []
    try:
        texts = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise Refused("routes is not a JSON list") from exc
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise Refused("routes is not a JSON list of strings")
    try:
        return [str(route) for route in routing.parse_routes(texts)]
    except routing.RouteError as exc:
        raise Refused(f"malformed routes: {exc}") from exc


def _by_name_key(names: list[str], stack_name: Any, functions: Any) -> str:
    """The session key of exact function ``names``; a stackName given with them must be it."""
    if len(names) > MAX_FUNCTION_GLOBS or not all(naming.FUNCTION_NAME_PATTERN.match(n) for n in names):
        raise Refused("malformed names")
    if functions:
        raise Refused("names and a functions filter together")
    key = naming.by_name_key(names)
    if stack_name not in (None, "", key):
        raise Refused(f"stackName {stack_name!r} is not the key of these names ({key})")
    return key
