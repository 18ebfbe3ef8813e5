"""What the manager works on: the functions of a target stack (or the exact functions a
by-name session names), and what surrounds each.

Read-only: the stack's function resources (nested stacks included), each function's
aliases and the SQS queues that feed it, which decide whether debugging can work at all.
Queues are found through the stack's ``AWS::Lambda::EventSourceMapping`` resources (what
SAM's ``SQS`` events create), read with ``GetEventSourceMapping``: listing every mapping of
a function has no resource-level permission, and the manager's powers are bounded by ARNs.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from plldb import naming
from plldb.lambdas import common
from plldb.lambdas.common import log
from plldb.lambdas.manager.plan import SKIPPED, Outcome, Surroundings, matches


class StackNotFound(LookupError):
    """The session names a stack that does not exist (in this account and region)."""


class Targets:
    """Stack and function lookups for one manager run."""

    def __init__(self, lambda_: Any, cloudformation: Any) -> None:
        self.lambda_ = lambda_
        self.cloudformation = cloudformation
        self.mapping_ids: list[str] = []  # event source mappings seen by stack_functions
        self.queues: dict[str, list[tuple[str, int | None]]] = {}  # function name -> queues
        self.layer_problems: dict[str, str | None] = {}  # layer version ARN -> why unusable

    def session_functions(
        self, session: dict[str, Any] | None, stack_name: str, filters: list[str]
    ) -> tuple[list[str], list[Outcome], str]:
        """(function names to instrument, skips, what they are, for messages) of a session.

        A by-name session's targets are exactly the names the authorizer stored in it; one
        that does not exist is skipped with why. Otherwise they are the stack's functions
        that match ``filters``.
        """
        names = [v["S"] for v in (session or {}).get(naming.A_NAMES, {}).get("L", [])]
        if not names:
            functions = [name for logical, path, name in self.stack_functions(stack_name)
                         if matches(filters, logical, path, name)]
            return functions, [], f"of stack {stack_name}"
        found, skips = [], []
        for name in names:
            try:
                self.lambda_.get_function_configuration(FunctionName=name)
                found.append(name)
            except botocore.exceptions.ClientError as exc:
                if common.error_code(exc) != "ResourceNotFoundException":
                    raise
                skips.append(Outcome(name, SKIPPED, "no such function in this account and region"))
        return found, skips, "named by the session"

    def stack_functions(self, stack_name: str, prefix: str = "") -> list[tuple[str, str, str]]:
        """(logical id, nested path like "Nested/Fn", physical name) of every function.

        The ids of the stack's event source mappings are kept for :meth:`read_queues`.
        """
        found: list[tuple[str, str, str]] = []
        paginator = self.cloudformation.get_paginator("list_stack_resources")
        try:
            resources = [
                resource
                for page in paginator.paginate(StackName=stack_name)
                for resource in page["StackResourceSummaries"]
            ]
        except botocore.exceptions.ClientError as exc:
            if common.error_code(exc) == "ValidationError":
                raise StackNotFound(f"stack {stack_name} does not exist") from exc
            raise
        for resource in resources:
            physical = resource.get("PhysicalResourceId")
            if not physical or resource["ResourceStatus"].startswith("DELETE"):
                continue
            logical = resource["LogicalResourceId"]
            path = f"{prefix}{logical}"
            if resource["ResourceType"] == "AWS::Lambda::Function":
                found.append((logical, path, physical))
            elif resource["ResourceType"] == "AWS::Lambda::EventSourceMapping":
                self.mapping_ids.append(physical)
            elif resource["ResourceType"] == "AWS::CloudFormation::Stack":
                found.extend(self.stack_functions(physical, f"{path}/"))
        return found

    def surroundings(self, name: str, layers: list[str]) -> Surroundings:
        """The function's aliases, the SQS queues that feed it, and which of its own
        ``layers`` cannot be set on a function any more."""
        aliases = tuple(
            (alias["Name"], alias["FunctionVersion"])
            for page in self.lambda_.get_paginator("list_aliases").paginate(FunctionName=name)
            for alias in page["Aliases"]
        )
        return Surroundings(
            aliases=aliases,
            queues=tuple(self.queues.get(name, ())),
            unusable_layers=self.unusable_layers(layers),
        )

    def unusable_layers(self, layers: list[str]) -> tuple[tuple[str, str], ...]:
        """(ARN, why) of each layer version Lambda would refuse in an update.

        Deleted versions "can no longer be viewed or added to functions", and every update
        re-sends the function's whole layer list: one such version makes any update of the
        function fail. Read once per run for each version (functions share layers).
        """
        problems = []
        for arn in layers:
            if arn not in self.layer_problems:
                self.layer_problems[arn] = self.layer_problem(arn)
            if self.layer_problems[arn]:
                problems.append((arn, str(self.layer_problems[arn])))
        return tuple(problems)

    def layer_problem(self, arn: str) -> str | None:
        """Why this layer version cannot be read (so not added), or None when it can."""
        layer, _, version = arn.rpartition(":")
        try:
            self.lambda_.get_layer_version(LayerName=layer, VersionNumber=int(version))
        except botocore.exceptions.ClientError as exc:
            code = common.error_code(exc)
            if code == "ResourceNotFoundException":
                return "the version was deleted"
            if code in ("AccessDeniedException", "AccessDenied"):
                return "its owner no longer shares it with this account"
            raise
        return None

    def read_queues(self) -> None:
        """The SQS queues of the stack's event source mappings, by function (after
        :meth:`stack_functions`, before planning in parallel)."""
        for mapping_id in self.mapping_ids:
            mapping = self.lambda_.get_event_source_mapping(UUID=mapping_id)
            source = mapping.get("EventSourceArn", "")
            if source.split(":")[2:3] == ["sqs"]:
                function = mapping["FunctionArn"].split(":")[6]
                self.queues.setdefault(function, []).append(self.queue(source))

    def queue(self, arn: str) -> tuple[str, int | None]:
        """(name, visibility timeout) of the SQS queue ``arn``; None if it cannot be read."""
        account, name = arn.split(":")[4:6]
        sqs = common.client("sqs")
        try:
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["VisibilityTimeout"]
            )["Attributes"]
            return name, int(attributes["VisibilityTimeout"])
        except botocore.exceptions.ClientError as exc:
            log.warning("cannot read the visibility timeout of %s: %s", arn, exc)
            return name, None
