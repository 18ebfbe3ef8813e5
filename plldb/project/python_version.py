"""Advice when a function's Python runtime is not the Python plldb runs on.

Handlers run inside the plldb process (that is what a debugger attaches to), so they get
plldb's interpreter. The advice must be something the user can do: plldb runs on Python
3.10 and newer, so for an older runtime the only fix is upgrading the function (and AWS
blocks updates to deprecated runtimes anyway); for a newer or other supported one, the
exact command that installs plldb under that Python. Running each handler under its own
interpreter (through ``uv``) was considered and not done: it needs a process per function,
and a debugger attached to plldb would no longer see the handlers
(docs/requirements/real-projects.md).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence

from plldb.project.model import LocalFunction

OLDEST_SUPPORTED = (3, 10)  # plldb's requires-python
# The date from which AWS blocks updates of functions on the runtime (Lambda's runtime
# deprecation policy, "Block function update").
UPDATES_BLOCKED = {
    (3, 9): datetime.date(2026, 3, 9),
    (3, 10): datetime.date(2027, 1, 15),
}
UPGRADE_TO = "python3.13"


def version_warnings(
    functions: Sequence[LocalFunction], python_version: tuple[int, int],
    today: datetime.date | None = None,
) -> list[str]:
    """One warning per runtime that differs from ``python_version`` (plldb's), saying what
    works: upgrading the function, or installing plldb under the runtime's Python."""
    by_runtime: dict[tuple[int, int], list[str]] = {}
    for function in functions:
        match = re.fullmatch(r"python(\d+)\.(\d+)", function.runtime)
        if match and (int(match[1]), int(match[2])) != tuple(python_version):
            by_runtime.setdefault((int(match[1]), int(match[2])), []).append(function.logical_id)
    day = today or datetime.date.today()
    warnings = []
    for version, names in by_runtime.items():
        who = "all functions" if len(names) == len(functions) > 1 else "function " + ", ".join(names)
        runtime = f"python{version[0]}.{version[1]}"
        here = f"{python_version[0]}.{python_version[1]}"
        warnings.append(
            f"{who}: runtime {runtime} but plldb runs handlers on Python {here}; version-specific "
            f"behaviour may differ. {advice(version, day)}"
        )
    return warnings


def advice(version: tuple[int, int], today: datetime.date) -> str:
    """What to do about a function on Python ``version``."""
    runtime = f"python{version[0]}.{version[1]}"
    blocked = _blocked_text(version, today)
    if version < OLDEST_SUPPORTED:
        return (
            f"plldb runs on Python {OLDEST_SUPPORTED[0]}.{OLDEST_SUPPORTED[1]} and newer, not {version[0]}."
            f"{version[1]}{blocked}: upgrade the function's runtime (to {UPGRADE_TO}) and test it with plldb"
        )
    dotted = f"{version[0]}.{version[1]}"
    match = (f"To match, run plldb under Python {dotted}: pipx install --python {runtime} plldb "
             f"(or uv tool install --python {dotted} plldb)")
    return f"{match}{blocked}; plan to upgrade it (to {UPGRADE_TO})" if blocked else match


def _blocked_text(version: tuple[int, int], today: datetime.date) -> str:
    runtime = f"python{version[0]}.{version[1]}"
    date = UPDATES_BLOCKED.get(version)
    if date is None:
        return f"; AWS no longer lets you update {runtime} functions" if version < (3, 9) else ""
    when = "since" if date <= today else "from"
    return f"; AWS blocks updates to {runtime} functions {when} {date.isoformat()}"
