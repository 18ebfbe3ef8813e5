"""What every command shares: the AWS context, the region check, escaping, progress lines.

The commands in this package parse options and print; the work is in the packages below
(:mod:`plldb.session`, :mod:`plldb.cloud`, :mod:`plldb.capture`, ...), imported when a
command runs so that ``plldb --help`` stays light.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from plldb import console


def escape(text: str) -> str:
    """Text for the console with rich markup neutralised (names may hold brackets)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def pass_aws(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give the command the AwsContext of --profile/--region, built when it runs (not for
    --help); a --region no partition knows is flagged first, before any wait for AWS."""

    @functools.wraps(command)
    def with_aws(*args: Any, **kwargs: Any) -> Any:
        from plldb.cloud.aws import AwsContext

        settings = click.get_current_context().find_root().obj
        if settings["region"]:
            _warn_unknown_region(settings["region"])
        return command(AwsContext(**settings), *args, **kwargs)

    return with_aws


def _warn_unknown_region(region: str) -> None:
    """A typo in --region otherwise shows only as "Cannot reach AWS" after the timeouts."""
    problem = unknown_region(region)
    if problem:
        console.warn(escape(problem))


def unknown_region(region: str) -> str | None:
    """Why ``region`` looks wrong (no partition botocore knows lists it), or None.

    A warning, not an error: a region newer than the installed botocore still works.
    """
    import difflib

    import botocore.session

    session = botocore.session.get_session()
    known = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("sts", partition_name=partition)
    }
    if region in known:
        return None
    close = difflib.get_close_matches(region, sorted(known), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return (f"region {region!r} is not an AWS region this plldb knows: {hint}"
            "check --region (or upgrade botocore for a brand-new region)")


def progress(message: str) -> None:
    console.info(escape(message))
