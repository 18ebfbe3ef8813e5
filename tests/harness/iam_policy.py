"""A small IAM identity-policy evaluator: does a set of policies allow one request?

Why our own: no maintained Python library evaluates a request (action, resource ARN,
condition context) against IAM policies; the maintained simulators are JavaScript or Rust,
and the Python ones either lint policies or only expand actions. This covers what the call
audit (tests/harness/iam_audit.py) needs and nothing more:

* AWS's order: an explicit ``Deny`` that applies wins; otherwise an ``Allow`` that applies
  allows; otherwise the request is implicitly denied.
* ``Action``/``NotAction`` (case-insensitive, ``*`` and ``?``), ``Resource``/``NotResource``
  matched ARN part by ARN part as AWS does (a wildcard never spans a ``:`` of the first
  five parts), policy variables such as ``${aws:username}`` from the request context.
* Conditions: the ``String*``, ``Arn*``, ``Numeric*``, ``Bool`` and ``Null`` operators,
  the ``...IfExists`` suffix and the ``ForAnyValue:``/``ForAllValues:`` set prefixes. Keys
  missing from the context make a condition false (``IfExists``: true), as in AWS. An
  operator this module does not know raises :class:`PolicyError` instead of guessing.

Not modelled (the audit's requirement document lists them): resource-based policies,
permission boundaries, session policies and organisation SCPs.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ContextValue = str | list[str]


class PolicyError(ValueError):
    """A policy uses something this evaluator does not model; the text names it."""


class Decision(enum.Enum):
    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicitly denied"
    IMPLICIT_DENY = "not allowed by any statement"


@dataclass(frozen=True)
class Request:
    """One authorisation question: may the principal do ``action`` on ``resource``?"""

    action: str
    resource: str
    context: dict[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    statement: dict[str, Any] | None = None  # the deciding statement, if any

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


def evaluate(policies: Iterable[dict[str, Any]], request: Request) -> Outcome:
    """AWS's identity-policy logic over every statement of ``policies``."""
    allow: dict[str, Any] | None = None
    for policy in policies:
        for statement in as_list(policy.get("Statement", [])):
            if not statement_applies(statement, request):
                continue
            if statement["Effect"] == "Deny":
                return Outcome(Decision.EXPLICIT_DENY, statement)
            allow = allow or statement
    return Outcome(Decision.ALLOWED, allow) if allow else Outcome(Decision.IMPLICIT_DENY)


def statement_applies(statement: dict[str, Any], request: Request) -> bool:
    """Action, resource and condition of one statement all match the request."""
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise PolicyError(f"statement without Effect Allow/Deny: {statement}")
    return (
        _element_matches(statement, "Action", request.action, action_matches)
        and _element_matches(
            statement,
            "Resource",
            request.resource,
            lambda pattern, value: arn_matches(_variables(pattern, request.context), value),
        )
        and conditions_match(statement.get("Condition", {}), request.context)
    )


def _element_matches(
    statement: dict[str, Any], name: str, value: str, match: Callable[[str, str], bool]
) -> bool:
    """``name`` (e.g. Action) matches, or ``Not<name>`` does not; one of them must be there."""
    if name in statement:
        return any(match(pattern, value) for pattern in as_list(statement[name]))
    if f"Not{name}" in statement:
        return not any(match(pattern, value) for pattern in as_list(statement[f"Not{name}"]))
    raise PolicyError(f"statement has neither {name} nor Not{name}: {statement}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's ``*`` (any run of characters) and ``?`` (one character); nothing else is special."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    flags = re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE
    return re.fullmatch(regex, value, flags) is not None


def action_matches(pattern: str, action: str) -> bool:
    return wildcard(pattern, action, case_sensitive=False)


def arn_matches(pattern: str, arn: str) -> bool:
    """Resource and ``Arn*`` matching: each of the first five ARN parts on its own."""
    if pattern == "*":
        return True
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return wildcard(pattern, arn)
    return all(wildcard(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def _variables(pattern: str, context: dict[str, ContextValue]) -> str:
    """Policy variables replaced from the context; one that is missing matches nothing."""

    def value(match: re.Match[str]) -> str:
        found = context.get(match.group(1))
        return found if isinstance(found, str) else "\x00no-such-value\x00"

    return _VARIABLE.sub(value, pattern)


# --------------------------------------------------------------------------- conditions


def _number(text: str) -> float:
    return float(text)


_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda value, wanted: value == wanted,
    "StringEqualsIgnoreCase": lambda value, wanted: value.lower() == wanted.lower(),
    "StringLike": lambda value, wanted: wildcard(wanted, value),
    "ArnEquals": lambda value, wanted: value == wanted,
    "ArnLike": lambda value, wanted: arn_matches(wanted, value),
    "NumericEquals": lambda value, wanted: _number(value) == _number(wanted),
    "NumericLessThan": lambda value, wanted: _number(value) < _number(wanted),
    "NumericLessThanEquals": lambda value, wanted: _number(value) <= _number(wanted),
    "NumericGreaterThan": lambda value, wanted: _number(value) > _number(wanted),
    "NumericGreaterThanEquals": lambda value, wanted: _number(value) >= _number(wanted),
    "Bool": lambda value, wanted: value.lower() == wanted.lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


def conditions_match(condition: dict[str, Any], context: dict[str, ContextValue]) -> bool:
    """Every operator block, and every key in it, must match (AND); values within: OR."""
    return all(
        condition_matches(operator, key, as_list(wanted), context)
        for operator, block in condition.items()
        for key, wanted in block.items()
    )


def condition_matches(
    operator: str, key: str, wanted: list[Any], context: dict[str, ContextValue]
) -> bool:
    """One ``operator: {key: wanted}`` entry against the request context."""
    wanted = [str(w).lower() if isinstance(w, bool) else str(w) for w in wanted]
    present = _context_value(context, key)
    if operator == "Null":  # "true": the key must be absent
        return (present is None) == (wanted[0].lower() == "true")
    set_prefix, _, operator = operator.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    if present is None:
        return if_exists or set_prefix == "ForAllValues"
    negated = operator in _NEGATED
    test = _OPERATORS.get(_NEGATED.get(operator, operator))
    if test is None:
        raise PolicyError(f"condition operator {operator} is not modelled by the audit")
    values = as_list(present)

    def one(value: str) -> bool:
        hit = any(test(value, w) for w in wanted)
        return not hit if negated else hit

    if set_prefix == "ForAllValues":
        return all(one(v) for v in values)
    if set_prefix in ("ForAnyValue", ""):
        return any(one(v) for v in values)
    raise PolicyError(f"condition set operator {set_prefix} is not modelled by the audit")


def _context_value(context: dict[str, ContextValue], key: str) -> ContextValue | None:
    """Condition key names are case-insensitive, except a tag name after the ``/``."""
    wanted = _key_name(key)
    return next((v for name, v in context.items() if _key_name(name) == wanted), None)


def _key_name(name: str) -> str:
    prefix, slash, rest = name.partition("/")
    return prefix.lower() + slash + rest
