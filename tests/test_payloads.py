"""plldb/session/payloads.py against a real moto server: transfers through presigned URLs, and the
message a user sees when one fails (the invocation is then answered with it)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import boto3
import botocore.config
import pytest

from plldb import limits, naming
from plldb.session import payloads
from tests.harness.moto_server import MotoServer

BUCKET = "plldb-payloads-test"
EVENT_KEY = naming.payload_key("AROAEXAMPLE:fn", "0f8fad5b-d9cb-469f-a165-70867728950e", "req-1", "event")
RESULT_KEY = EVENT_KEY.replace("event.json", "response.json")


@pytest.fixture
def s3(aws: MotoServer) -> Iterator[object]:
    """The harness's S3 client (SigV4, as the shim signs); moto checks presigned URLs."""
    client = boto3.client("s3", config=botocore.config.Config(signature_version="s3v4"))
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key=EVENT_KEY, Body=b'{"n": 1}')
    aws.enforce_iam(True)
    try:
        yield client
    finally:
        aws.enforce_iam(False)


def _url(s3: object, method: str, key: str, seconds: int = 60) -> str:
    return s3.generate_presigned_url(  # type: ignore[attr-defined]
        f"{method}_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=seconds
    )


def test_an_event_is_fetched_and_a_result_uploaded_through_their_urls(s3: object) -> None:
    ref = {"bucket": BUCKET, "key": EVENT_KEY, "size": 8, "url": _url(s3, "get", EVENT_KEY)}
    assert payloads.fetch(ref) == b'{"n": 1}'
    target = {"bucket": BUCKET, "key": RESULT_KEY, "url": _url(s3, "put", RESULT_KEY)}
    body = b'"' + b"y" * (limits.INLINE_PAYLOAD_LIMIT + 1) + b'"'
    assert payloads.upload(target, body) == {"bucket": BUCKET, "key": RESULT_KEY, "size": len(body)}
    assert s3.get_object(Bucket=BUCKET, Key=RESULT_KEY)["Body"].read() == body  # type: ignore[attr-defined]


def test_a_refused_download_says_what_and_why(s3: object) -> None:
    url = _url(s3, "get", EVENT_KEY)
    forged = re.sub(r"X-Amz-Signature=[0-9a-f]+", "X-Amz-Signature=" + "0" * 64, url)
    ref = {"bucket": BUCKET, "key": EVENT_KEY, "size": 8, "url": forged}
    with pytest.raises(payloads.PayloadError) as refused:
        payloads.fetch(ref)
    assert str(refused.value) == (
        f"download {EVENT_KEY}: HTTP 403: SignatureDoesNotMatch: The request signature we "
        "calculated does not match the signature you provided. Check your key and signing method."
    )


def test_a_download_of_another_size_than_announced_is_refused(s3: object) -> None:
    ref = {"bucket": BUCKET, "key": EVENT_KEY, "size": 9, "url": _url(s3, "get", EVENT_KEY)}
    with pytest.raises(payloads.PayloadError, match="got 8 bytes, the invocation said 9"):
        payloads.fetch(ref)


def test_an_unreachable_url_says_what_failed() -> None:
    ref = {"bucket": BUCKET, "key": EVENT_KEY, "size": 8, "url": f"http://127.0.0.1:9/{EVENT_KEY}"}
    with pytest.raises(payloads.PayloadError, match=rf"download {EVENT_KEY}: .*refused"):
        payloads.fetch(ref)


def test_a_large_result_without_an_upload_url_says_what_to_do() -> None:
    with pytest.raises(
        payloads.PayloadError,
        match=r"the result of 10 bytes is too large for a message, and the invocation carries "
        r"no upload URL \(result_upload\): update the helper stack with `plldb bootstrap`",
    ):
        payloads.upload(None, b"x" * 10)
