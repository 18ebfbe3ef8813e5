"""Variables of an invocation's environment that the laptop never takes from the message.

An invocation message carries the function's cloud environment, and the handler runs here
with it. A few variables do not describe the function: they tell the AWS SDK (botocore,
boto3) or Python's HTTP stack where to send requests, which credentials to load, or which
certificates to trust. Taken from a message, they would let whoever wrote the message send
the handler's AWS calls, with the function's credentials, to a host of their choice, or
swap the credentials for others. None of them means anything in a Lambda function that the
developer's machine needs, so they are dropped from the message's environment (and named
once); the developer's own values, if any, stay.

The list follows botocore's configuration and credential chain (botocore/configprovider.py,
botocore/credentials.py, botocore/httpsession.py) and the proxy and certificate variables
Python's ``urllib``/``ssl`` and ``requests`` read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Which credentials or profile the SDK loads, and from where.
CREDENTIAL_SOURCES = frozenset({
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CREDENTIAL_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_LOGIN_CACHE_DIRECTORY",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
})
# Where the SDK sends requests, what it reports to, and which endpoints and models it loads.
ENDPOINTS = frozenset({
    "AWS_ENDPOINT_URL",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_DATA_PATH",
})
# Which certificates are trusted (the SDK's, requests', OpenSSL's).
CERTIFICATES = frozenset({
    "AWS_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
})
# Proxies, read in either case by urllib, requests and botocore.
PROXIES = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"})
# Families: every AWS_ENDPOINT_URL_<SERVICE>, the container credential provider's
# AWS_CONTAINER_CREDENTIALS_* and AWS_CONTAINER_AUTHORIZATION_TOKEN*, client-side
# monitoring's AWS_CSM_* (it sends every call's metadata to AWS_CSM_HOST).
PREFIXES = ("AWS_ENDPOINT_URL_", "AWS_CONTAINER_", "AWS_CSM_")

REDIRECTING = CREDENTIAL_SOURCES | ENDPOINTS | CERTIFICATES


def is_redirecting(name: str) -> bool:
    """Whether variable ``name`` would point the SDK or HTTP elsewhere, or choose credentials."""
    return name in REDIRECTING or name.upper() in PROXIES or name.startswith(PREFIXES)


def redirecting(names: Iterable[str]) -> list[str]:
    """The redirecting ones among ``names``, sorted (what a warning names)."""
    return sorted(name for name in names if is_redirecting(name))


def without_redirects(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` minus every redirecting variable."""
    return {k: v for k, v in environment.items() if not is_redirecting(k)}
