"""The local cloud's DynamoDB is atomic per item, as real DynamoDB is.

moto alone applies an UpdateItem attribute by attribute while a concurrent GetItem reads
the item; the harness's launcher (tests/harness/moto_atomic.py) serialises DynamoDB
requests. This test writes two attributes in one UpdateItem over and over while another
thread reads the item, and fails on the first read that sees one without the other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.harness.moto_server import REGION, MotoServer

WRITES = 150
FILLER = 60  # attributes set between Status and Response: widens moto's window to a sure hit


@pytest.fixture(scope="module")
def table() -> Iterator[Any]:
    server = MotoServer().start()
    try:
        env = server.environment()
        client = boto3.client(
            "dynamodb",
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_table(
            TableName="Atomic",
            KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.put_item(TableName="Atomic", Item={"Id": {"S": "x"}, "N": {"N": "0"}})
        yield client
    finally:
        server.stop()


def test_no_reader_sees_half_an_update_item(table: Any) -> None:
    torn: list[dict] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set() and not torn:
            item = table.get_item(TableName="Atomic", Key={"Id": {"S": "x"}})["Item"]
            if item.get("Status", {}).get("S") == "RESPONDED" and "Response" not in item:
                torn.append(item)
            if "Response" in item and item["Response"]["S"] != item["N"]["N"]:
                torn.append(item)

    filler_sets = ", ".join(f"#f{i} = :f{i}" for i in range(FILLER))
    filler_names = {f"#f{i}": f"F{i}" for i in range(FILLER)}
    filler_values = {f":f{i}": {"S": "x" * 100} for i in range(FILLER)}
    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for n in range(1, WRITES + 1):
            table.put_item(TableName="Atomic", Item={"Id": {"S": "x"}, "N": {"N": str(n)}})
            table.update_item(
                TableName="Atomic",
                Key={"Id": {"S": "x"}},
                UpdateExpression=f"SET #s = :s, {filler_sets}, #r = :r",
                ExpressionAttributeNames={"#s": "Status", "#r": "Response", **filler_names},
                ExpressionAttributeValues={
                    ":s": {"S": "RESPONDED"},
                    ":r": {"S": str(n)},
                    **filler_values,
                },
            )
            if torn:
                break
    finally:
        done.set()
        for reader in readers:
            reader.join(timeout=30)
    assert not torn, f"a reader saw half an UpdateItem: {torn[0]}"
