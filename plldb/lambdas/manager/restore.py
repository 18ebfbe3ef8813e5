"""Restoring one function: remove plldb's traces from its current configuration.

The instrumentation record only names the function: what is set comes from the function
itself (:func:`plldb.lambdas.manager.plan.restoration`), never from the record, so a record
written by anyone else can make the manager apply nothing (docs/security.md, promise 3).
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from plldb import naming
from plldb.lambdas import common
from plldb.lambdas.manager import plan as manager_plan
from plldb.lambdas.manager.apply import Functions
from plldb.lambdas.manager.claims import Claims
from plldb.lambdas.manager.plan import GONE, OK, Outcome, config_subset
from plldb.lambdas.manager.records import Records
from plldb.lambdas.manager.targets import Targets


class Restorer:
    """Restores functions for one manager run, with its clients and records."""

    def __init__(self, lambda_: Any, functions: Functions, targets: Targets, claims: Claims,
                 records: Records) -> None:
        self.lambda_ = lambda_
        self.functions = functions
        self.targets = targets
        self.claims = claims
        self.records = records

    def restore(self, record: dict[str, Any]) -> Outcome:
        """Remove plldb's traces from the function's current configuration, then the record.

        The record only names the function: what is set comes from the function itself
        (:func:`manager_plan.restoration`), never from the record. Only the run that holds
        the record (:meth:`Records.hold_for_restore`) calls Lambda: a run restoring the same
        function at the same time leaves it to that one.
        """
        name = record[naming.A_FUNCTION_NAME]["S"]
        if not self.records.hold_for_restore(record):
            return Outcome(name, OK, "restored by another plldb run at the same time")
        try:
            return self.restore_held(name, record)
        except Exception:
            self.records.release_hold(record)
            raise

    def restore_held(self, name: str, record: dict[str, Any]) -> Outcome:
        """:meth:`restore`, once this run holds the record.

        A layer version of the function that was deleted meanwhile cannot be sent again: the
        layers are then left as they are (the plldb layer, inert without its variables,
        with them) and everything else of plldb's is removed.
        """
        try:
            configuration = self.lambda_.get_function_configuration(FunctionName=name)
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) != "ResourceNotFoundException":
                raise
            self.records.delete(name)
            return Outcome(name, GONE, "function no longer exists")
        current = config_subset(configuration)
        instrumented = record.get(naming.A_STATUS, {}).get("S") == naming.INSTRUMENTED
        target, outcome = manager_plan.restoration(name, current, instrumented)
        if target is not None and target != current:
            refused = self.targets.unusable_layers(target["Layers"])
            self.functions.update(name, target, layers=not refused)
            if refused:
                outcome = manager_plan.layers_left(outcome, refused)
        owner = record.get(naming.A_INSTRUMENTED_BY, {}).get("S", "")
        if not naming.is_route_table(owner):
            self.claims.release(configuration["FunctionArn"], owner, self.records.session(owner))
        self.claims.release_stage(configuration["FunctionArn"])  # shared stages' marks, if any
        self.records.delete(name)
        return outcome
