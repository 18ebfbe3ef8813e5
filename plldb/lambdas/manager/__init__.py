"""The manager Lambda: instruments and restores a session's functions.

The helper template names the handler ``plldb.lambdas.manager.handler``; it lives in
:mod:`plldb.lambdas.manager.entry`. The other modules are its parts: the request it takes,
the targets it finds, the plan per function, the records it keeps, the claims it checks,
and the updates and grants it applies.
"""

from plldb.lambdas.manager.entry import handler

__all__ = ["handler"]
