"""Events as AWS sends them to a function: API Gateway REST (payload 1.0) and HTTP API
(payload 2.0) proxy events, ALB target events, SQS and SNS batches.

Shapes follow the AWS documentation's samples (Lambda developer guide: "Using Lambda with
API Gateway", "... with Application Load Balancers", "... with Amazon SQS", "... with Amazon
SNS"); the values are made up. Headers are given as the client sent them, in order, as
(name, value) pairs; each builder puts them where that service does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

ACCOUNT = "123456789012"
REGION = "eu-west-1"
Headers = list[tuple[str, str]]

BROWSER_HEADERS: Headers = [
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8"),
    ("Accept-Encoding", "gzip, deflate, br"),
    ("Accept-Language", "en-GB,en;q=0.9"),
    ("CloudFront-Forwarded-Proto", "https"),
    ("CloudFront-Is-Desktop-Viewer", "true"),
    ("CloudFront-Is-Mobile-Viewer", "false"),
    ("CloudFront-Viewer-Country", "GB"),
    ("Host", "1234567890.execute-api.eu-west-1.amazonaws.com"),
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"),
    ("Via", "2.0 f0ae3e9c0d2b1c7d3f5b0a1e9c8d7f6a.cloudfront.net (CloudFront)"),
    ("X-Amz-Cf-Id", "cDehVQoZnx43VYQb9j2-nvCh-9z396Uhbp027Y2JvkCPNLmGJHqlaA=="),
    ("X-Amzn-Trace-Id", "Root=1-5e66d96f-7491f09xmpl79d18acf3d050"),
    ("X-Forwarded-For", "203.0.113.17, 130.176.0.0"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Proto", "https"),
]


def _last_values(headers: Headers, lower: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers:
        out[name.lower() if lower else name] = value
    return out


def _all_values(headers: Headers, lower: bool = False) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        out.setdefault(name.lower() if lower else name, []).append(value)
    return out


def rest_event(headers: Headers, path: str = "/orders/42", body: str | None = None) -> dict:
    """API Gateway REST API, Lambda proxy integration: ``headers`` keeps the client's
    spelling and the last of repeated headers, ``multiValueHeaders`` every value."""
    return {
        "resource": "/orders/{id}",
        "path": path,
        "httpMethod": "POST" if body else "GET",
        "headers": _last_values(headers) or None,
        "multiValueHeaders": _all_values(headers) or None,
        "queryStringParameters": {"expand": "items"},
        "multiValueQueryStringParameters": {"expand": ["items"]},
        "pathParameters": {"id": path.rsplit("/", 1)[-1]},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "1234567890",
            "resourceId": "abc123",
            "resourcePath": "/orders/{id}",
            "httpMethod": "POST" if body else "GET",
            "extendedRequestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "09/Apr/2025:12:34:56 +0000",
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "1234567890",
            "requestTimeEpoch": 1744202096000,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.17", "userAgent": _last_values(headers).get(
                "User-Agent", "curl/8.5.0"), "cognitoIdentityId": None, "accessKey": None,
                "caller": None, "user": None, "userArn": None, "accountId": None},
            "domainName": "1234567890.execute-api.eu-west-1.amazonaws.com",
            "apiKey": None,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def http_event(headers: Headers, path: str = "/orders/42", body: str | None = None) -> dict:
    """API Gateway HTTP API (payload format 2.0; function URLs send the same): lower-case
    header names, a repeated header's values joined with commas."""
    joined = {name: ",".join(values) for name, values in _all_values(headers, True).items()}
    return {
        "version": "2.0",
        "routeKey": "ANY /orders/{id}",
        "rawPath": path,
        "rawQueryString": "expand=items",
        "cookies": ["session=abc"],
        "headers": joined,
        "queryStringParameters": {"expand": "items"},
        "pathParameters": {"id": path.rsplit("/", 1)[-1]},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "api-id",
            "domainName": "api-id.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "api-id",
            "http": {"method": "POST" if body else "GET", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.17", "userAgent": joined.get("user-agent", "")},
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "ANY /orders/{id}",
            "stage": "$default",
            "time": "09/Apr/2025:12:34:56 +0000",
            "timeEpoch": 1744202096000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def alb_event(headers: Headers, multi_value: bool = False, path: str = "/orders/42") -> dict:
    """Application Load Balancer target: lower-case names; with multi-value headers enabled
    on the target group only ``multiValueHeaders``, else ``headers`` with the last value."""
    event: dict[str, Any] = {
        "requestContext": {"elb": {"targetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:"
                                   f"{ACCOUNT}:targetgroup/lambda-target/d6190d154bc908a5"}},
        "httpMethod": "GET",
        "path": path,
        "body": "",
        "isBase64Encoded": False,
    }
    if multi_value:
        event["multiValueQueryStringParameters"] = {"expand": ["items"]}
        event["multiValueHeaders"] = _all_values(headers, True)
    else:
        event["queryStringParameters"] = {"expand": "items"}
        event["headers"] = _last_values(headers, True)
    return event


def sqs_event(messages: list[tuple[str, dict[str, str]]]) -> dict:
    """An SQS batch: one record per (body, string attributes) message."""
    records = []
    for number, (body, attributes) in enumerate(messages):
        records.append({
            "messageId": f"059f36b4-87a3-44ab-83d2-66197{number:07d}",
            "receiptHandle": f"AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a{number}",
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1545082649183",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1545082649185",
            },
            "messageAttributes": {
                name: {"stringValue": value, "stringListValues": [], "binaryListValues": [],
                       "dataType": "String"}
                for name, value in attributes.items()
            },
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders",
            "awsRegion": REGION,
        })
    return {"Records": records}


def sns_event(message: str, attributes: dict[str, str]) -> dict:
    """An SNS notification (one record, as SNS always sends)."""
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:orders"
    return {
        "Records": [{
            "EventVersion": "1.0",
            "EventSubscriptionArn": f"{topic}:c9135db0-26c4-47ec-8998-413945fb5a96",
            "EventSource": "aws:sns",
            "Sns": {
                "SignatureVersion": "1",
                "Timestamp": "2019-01-02T12:45:07.000Z",
                "Signature": "tcc6faL2yUC6dgZdmrwh1Y4cGa/ebXEkAi6RibDsvpi+tE/1+82j...65r==",
                "SigningCertUrl": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService.pem",
                "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                "Message": message,
                "MessageAttributes": {
                    name: {"Type": "String", "Value": value} for name, value in attributes.items()
                },
                "Type": "Notification",
                "UnsubscribeUrl": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe",
                "TopicArn": topic,
                "Subject": "order",
            },
        }]
    }


def encoded(event: dict) -> bytes:
    """The event as the Runtime API hands it to the function."""
    return json.dumps(event).encode()
