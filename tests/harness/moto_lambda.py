"""Lambda in moto, as strict as Lambda where plldb relies on it (the proving ground).

Runs inside the moto launcher's process (tests/harness/moto_launcher.py). Each rule is an AWS
statement, sourced in docs/aws-limits.md; the dates and sizes here are the local cloud's own
copy of AWS's, never plldb's constants, so a wrong constant in plldb fails a test:

* **Configuration moto drops.** ``CapacityProviderConfig`` (Lambda Managed Instances) and
  ``DurableConfig`` (durable functions) given at creation are kept and returned by
  GetFunction(Configuration), as Lambda returns them.
* **Environment size as Lambda measures it.** Lambda refuses a configuration whose
  environment variables, as JSON text (``{"NAME":"value",...}``), exceed 4 KB, with
  ``InvalidParameterValueException``.
* **Blocked runtimes.** From a deprecated runtime's "Block function update" date, Lambda
  refuses UpdateFunctionConfiguration of its functions (``InvalidParameterValueException``).
  Decided by the date of the request.
* **Deleted layer versions** cannot be added to functions: moto already refuses an update
  naming one (``ResourceNotFoundException``), also when the function had it already.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Callable
from typing import Any

from moto.awslambda.exceptions import InvalidParameterValueException
from moto.awslambda.models import LambdaFunction

ENVIRONMENT_LIMIT = 4096  # bytes of the variables' JSON text
# "Block function update" of AWS's table of deprecated runtimes, for the Python runtimes.
UPDATE_BLOCKED_FROM = {
    "python3.9": datetime.date(2026, 3, 9),
    "python3.10": datetime.date(2027, 1, 15),
}
KEPT = ("CapacityProviderConfig", "DurableConfig")  # configuration moto would drop


def environment_json_size(variables: dict[str, str]) -> int:
    """The size Lambda holds to 4 KB: the variables as compact JSON text."""
    return len(json.dumps(variables, separators=(",", ":")).encode())


def _check_environment(variables: dict[str, str]) -> None:
    if environment_json_size(variables) > ENVIRONMENT_LIMIT:
        measured = json.dumps(variables, separators=(",", ":"))
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the "
            "environment variables you have provided exceeded the 4KB limit. "
            f"String measured: {measured}"
        )


def _check_runtime(runtime: str | None, today: datetime.date) -> None:
    blocked = UPDATE_BLOCKED_FROM.get(runtime or "")
    if blocked is not None and today >= blocked:
        raise InvalidParameterValueException(
            f"The runtime parameter of {runtime} is no longer supported for creating or "
            "updating AWS Lambda functions. We recommend you use a supported runtime while "
            "creating or updating functions."
        )


def _created(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def init(self: LambdaFunction, account_id: str, spec: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        _check_environment(spec.get("Environment", {}).get("Variables", {}))
        original(self, account_id, spec, *args, **kwargs)
        self.plldb_kept = {key: spec[key] for key in KEPT if spec.get(key)}

    return init


def _configuration(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @functools.wraps(original)
    def get(self: LambdaFunction, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {**original(self, *args, **kwargs), **getattr(self, "plldb_kept", {})}

    return get


def _updated(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    @functools.wraps(original)
    def update(self: LambdaFunction, config_updates: dict[str, Any]) -> dict[str, Any]:
        _check_runtime(config_updates.get("Runtime", self.run_time), datetime.date.today())
        if "Environment" in config_updates:
            _check_environment(config_updates["Environment"].get("Variables", {}))
        return original(self, config_updates)

    return update


def install() -> None:
    """Patch moto's Lambda function model (once per process)."""
    LambdaFunction.__init__ = _created(LambdaFunction.__init__)  # type: ignore[method-assign]
    LambdaFunction.get_configuration = _configuration(LambdaFunction.get_configuration)  # type: ignore[method-assign]
    LambdaFunction.update_configuration = _updated(LambdaFunction.update_configuration)  # type: ignore[method-assign]
