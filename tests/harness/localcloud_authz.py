"""Resource-level IAM checks in the local cloud, where AWS makes them and moto does not.

Runs inside the moto launcher's process (tests/harness/moto_launcher.py). An attack test
proves something only if the local cloud refuses what AWS refuses; where moto's own
enforcement is laxer than AWS, this module closes the gap:

* **Lambda resources.** moto authorises Lambda requests on the resource ``*``, so a
  statement allowing ``lambda:TagResource`` on ``function:stackA-*`` also lets its holder
  tag ``stackB-Fn``. :func:`install` makes moto authorise each Lambda request on the ARN
  AWS authorises it on (the function's, qualified when the request names a qualifier; the
  layer version's; the ARN a tagging call names), derived by the call audit's own mapping
  (tests/harness/call_resources.py) so that the two never disagree. Conditions are not
  evaluated here (the call audit does that).
"""

from __future__ import annotations

from typing import Any

from moto.awslambda.responses import LambdaResponse

from tests.harness import call_resources

# --------------------------------------------------------------------------- Lambda in moto


def lambda_resource(handler: Any) -> str:
    """The ARN AWS authorises this Lambda request on; ``*`` for account-level calls.

    ``handler`` is moto's LambdaResponse for the request, set up and about to be
    authorised. A request the mapping does not know (or cannot parse: moto refuses it
    next) stays on ``*``, i.e. action level, as before.
    """
    try:
        calls = call_resources.derive(handler, "lambda", "*")
    except (LookupError, ValueError):
        return "*"
    return calls[0][1]


def install() -> None:
    """moto authorises every Lambda request on :func:`lambda_resource` (BaseResponse's
    ``call_action`` asks ``_determine_resource`` when a response class has one)."""
    LambdaResponse._determine_resource = lambda_resource  # type: ignore[attr-defined]
