"""The gateway emulator configured from the helper stack deployed in moto.

A thin adapter over :mod:`tests.harness.gateway`: instead of the emulator's defaults, its
settings (tables, layer ARN, bucket, stage, API id, grace period, debug timeout, and which
handler each helper function runs with which timeout, memory and execution role) are read from the
``plldb`` stack's functions as moto holds them, i.e. as the template defined them. So a
change to plldb/infra/template.yaml reaches the emulated helper Lambdas.

Run as ``python -m tests.harness.localcloud_gateway --moto-url URL --ws-port N --http-port M``;
prints the gateway's JSON announcement line and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import threading
import urllib.parse

import boto3

from plldb import limits, naming
from plldb.lambdas import common
from tests.harness import gateway
from tests.harness.localcloud_credentials import RoleCredentials
from tests.harness.moto_server import FAKE_CREDENTIALS, REGION

log = logging.getLogger(__name__)

_HANDLER_FUNCTION = "handler"


def helper_functions(moto_url: str) -> dict[str, dict]:
    """Physical name -> configuration of every function of the helper stack in moto."""
    session = boto3.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=REGION,
    )
    cf = session.client("cloudformation", endpoint_url=moto_url)
    lam = session.client("lambda", endpoint_url=moto_url)
    resources = cf.describe_stack_resources(StackName=naming.HELPER_STACK_NAME)["StackResources"]
    names = [
        r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::Lambda::Function"
    ]
    return {name: lam.get_function_configuration(FunctionName=name) for name in names}


def settings_from_stack(moto_url: str, ws_port: int, http_port: int) -> gateway.GatewaySettings:
    """GatewaySettings whose every value comes from the deployed helper functions."""
    configs = helper_functions(moto_url)
    functions = {}
    for name, config in configs.items():
        module, _, attribute = config["Handler"].rpartition(".")
        if attribute != _HANDLER_FUNCTION:
            raise ValueError(
                f"{name}: the gateway emulator runs `<module>.handler`, not {config['Handler']}"
            )
        functions[name] = gateway.HelperFunction(
            module, int(config["Timeout"]), int(config["MemorySize"]), config["Role"]
        )
    env = {k: str(v) for k, v in configs[gateway.MANAGER]["Environment"]["Variables"].items()}
    management = urllib.parse.urlsplit(env[naming.ENV_MANAGEMENT_URL])
    # arn:aws:execute-api:<region>:<account>:<api id>/<stage>/POST/@connections/*
    api_id = env[naming.ENV_CONNECTIONS_ARN].split(":")[5].split("/")[0]
    return gateway.GatewaySettings(
        moto_url=moto_url,
        layer_arn=env[naming.ENV_LAYER_ARN],
        payload_bucket=env[naming.ENV_PAYLOAD_BUCKET],
        sessions_table=env[naming.ENV_SESSIONS_TABLE],
        debugger_table=env[naming.ENV_DEBUGGER_TABLE],
        stage=management.path.strip("/"),
        api_id=api_id,
        ws_port=ws_port,
        http_port=http_port,
        grace_seconds=float(env[naming.ENV_GRACE_SECONDS]),
        default_timeout=int(env[naming.ENV_DEFAULT_TIMEOUT]),
        shim_policy_arn=env[common.ENV_SHIM_POLICY_ARN],
        functions=functions,
        credentials=RoleCredentials(moto_url).environment,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moto-url", required=True)
    parser.add_argument("--ws-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument(
        "--max-lifetime",
        type=float,
        default=float(limits.CONNECTION_LIFETIME_SECONDS),
        help="seconds before a connection is closed (API Gateway: 2 hours)",
    )
    parser.add_argument(
        "--drop-disconnect",
        type=float,
        default=0.0,
        help="share of $disconnect events to lose (0: none, 1: all)",
    )
    parser.add_argument("--drop-seed", type=int, help="seed of the drops (default: random)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    settings = settings_from_stack(args.moto_url, args.ws_port, args.http_port)
    emulator = gateway.Gateway(
        dataclasses.replace(
            settings,
            max_lifetime=args.max_lifetime,
            drop_disconnect=args.drop_disconnect,
            drop_seed=args.drop_seed,
        )
    )
    emulator.start()
    print(
        json.dumps(
            {
                "websocket_url": emulator.websocket_url,
                "management_url": emulator.management_url,
                "lambda_url": emulator.lambda_url,
            }
        ),
        flush=True,
    )
    # A timed wait: the kernel may deliver SIGTERM to another thread, and a main thread
    # blocked for good in Event.wait() would never run the Python handler that sets stop.
    while not stop.wait(1.0):
        pass
    emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
