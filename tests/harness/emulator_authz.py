"""The emulators' question to the moto launcher: would AWS serve this signed request?

API Gateway's management API and Lambda check every request's SigV4 signature and the
signer's IAM policies before serving it. The gateway emulator serves ``@connections`` and
``Invoke`` of the helper Lambdas itself, so without this check any process on the machine
could post to a session's connection or invoke the manager, and an attack test that
relies on that being refused would prove nothing. The launcher holds the credentials and
policies (moto's), so it decides: ``POST /plldb-localcloud/authorize``
(tests/harness/localcloud_authz.py). With enforcement off it allows everything, as moto
then does.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

AUTHORIZE_PATH = "/plldb-localcloud/authorize"
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Verdict:
    """The launcher's answer: allowed or not, who signed, and AWS's refusal if refused."""

    allowed: bool
    principal_arn: str | None
    error_code: str | None
    message: str | None


def authorize(
    moto_url: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    action: str,
    resource: str,
) -> Verdict:
    """Ask the launcher at ``moto_url`` whether AWS would let this request do ``action`` on
    ``resource``. ``url`` and ``headers`` are as received (the signature covers them)."""
    question = {
        "method": method,
        "url": url,
        "headers": dict(headers),
        "body": base64.b64encode(body).decode(),
        "action": action,
        "resource": resource,
    }
    request = urllib.request.Request(
        f"{moto_url}{AUTHORIZE_PATH}",
        data=json.dumps(question).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        return Verdict(**json.loads(response.read()))


def connection_arn(region: str, account: str, api: str, stage: str, method: str, cid: str) -> str:
    """What ``execute-api:ManageConnections`` is checked on for one management call."""
    return f"arn:aws:execute-api:{region}:{account}:{api}/{stage}/{method}/@connections/{cid}"
