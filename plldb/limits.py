"""The AWS limits plldb works within, and the sizes and times it chooses under them.

Standard library only, and bundled as :mod:`plldb.naming` is. Each limit is sourced in
docs/aws-limits.md.
"""

from __future__ import annotations

# --- Limits (AWS) -------------------------------------------------------------------------
# Each is sourced in docs/aws-limits.md. The quotas (``*_LIMIT``) are what AWS refuses above;
# what plldb sends stays below them by a margin (``*_SIZE``), which also covers AWS's "KB"
# meaning 1,000 rather than 1,024 bytes.

FRAME_LIMIT = 32 * 1024  # API Gateway WebSocket frame size quota
MESSAGE_LIMIT = 128 * 1024  # API Gateway WebSocket message payload size quota
FRAME_SIZE = 30 * 1024  # frames plldb sends
MESSAGE_SIZE = 120 * 1024  # messages the local tool sends
# Messages posted to a connection (@connections): the 32 KB frame quota applies to them too.
POST_SIZE = 30 * 1024
INLINE_PAYLOAD_LIMIT = 96 * 1024  # a result above this travels through the bucket
# A presigned S3 URL: mostly the signer's session token (about 1-2 KB for a function's role).
PRESIGNED_URL_LIMIT = 8 * 1024
# How long a payload URL outlives the invocation's deadline: a transfer that starts just
# before it may finish, and small clock differences between the function and S3 are covered.
PAYLOAD_URL_MARGIN_SECONDS = 60
ITEM_LIMIT = 400 * 1024
MAX_PAYLOAD = 6 * 1024 * 1024
ENV_LIMIT = 4 * 1024
MAX_LAYERS = 5
MAX_TIMEOUT = 900
DEFAULT_DEBUG_TIMEOUT = 900
# API Gateway's integration timeout (29 s) bounds how long $connect can take: a connection
# that does not exist this long after its $connect started never will.
CONNECT_POST_WAIT_SECONDS = 30
# The URL a WebSocket client opens (wss://host/stage?query), in characters.
WEBSOCKET_URL_LIMIT = 4096
CONNECT_WINDOW_SECONDS = 300  # a PENDING session must be connected within this
SESSION_TTL_SECONDS = 24 * 3600
REQUEST_TTL_SECONDS = 3600
DEFAULT_GRACE_SECONDS = 120
IDLE_TIMEOUT_SECONDS = 600
CONNECTION_LIFETIME_SECONDS = 2 * 3600

# A shared stage's route table, as an execution environment keeps it (plldb/layer/stage.py):
# used as is for FRESH seconds, re-read in the background until STALE, read before deciding
# after that. A new or removed route reaches every environment within STALE seconds.
ROUTE_TABLE_FRESH_SECONDS = 1.0
ROUTE_TABLE_STALE_SECONDS = 2.0
