"""Small Lambda functions covering every way a handler can succeed or fail.

Written to a folder by :func:`write_sample_code`; shared by the Runtime API emulator tests
and the runner parity tests so both run the very same files.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

SOURCES = {
    "app.py": '''
        import datetime
        import decimal
        import os
        import time

        def handler(event, context):
            """Echo the event and the context; behaviour chosen by event["mode"]."""
            mode = event.get("mode") if isinstance(event, dict) else None
            if mode == "raise":
                return helper(event)
            if mode == "sleep":
                time.sleep(event["seconds"])
            if mode == "exit":
                os._exit(event["code"])
            if mode == "bytes":
                return b"\\x00\\xffbinary"
            if mode == "value":
                return VALUES[event["name"]]
            if mode == "large":
                return "x" * event["size"]
            return {
                "event": event,
                "request_id": context.aws_request_id,
                "arn": context.invoked_function_arn,
                "function_name": context.function_name,
                "function_version": context.function_version,
                "memory": context.memory_limit_in_mb,
                "log_group": context.log_group_name,
                "log_stream": context.log_stream_name,
                "remaining": context.get_remaining_time_in_millis(),
                "identity": [context.identity.cognito_identity_id,
                             context.identity.cognito_identity_pool_id],
                "client_custom": context.client_context.custom if context.client_context else None,
                "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                "wrapped": os.environ.get("WRAPPED_BY"),
            }

        def helper(event):
            raise ValueError(f"bad value {event.get('n')}")

        def no_args():
            return 1

        VALUES = {
            "decimal": {"d": decimal.Decimal("1.10"), "n": decimal.Decimal("NaN")},
            "datetime": {"at": datetime.datetime(2024, 1, 2, 3, 4, 5)},
            "set": {1, 2},
            "tuple_key": {(1, 2): 3},
            "unicode": {"text": "caf\\u00e9 \\u2028"},
            "nested_bytes": {"b": b"abc"},
            "nan": float("nan"),
        }
    ''',
    "broken_syntax.py": """
        def handler(event, context)
            return 1
    """,
    "bad_import.py": """
        import module_that_does_not_exist

        def handler(event, context):
            return 1
    """,
    "raise_at_import.py": """
        raise RuntimeError("cannot start")
    """,
    "layered.py": """
        import layerlib
        import os

        def handler(event, context):
            return {"layer": layerlib.VALUE, "wrapped": os.environ.get("WRAPPED_BY")}
    """,
}


def write_sample_code(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in SOURCES.items():
        (folder / name).write_text(textwrap.dedent(source).lstrip())
    return folder
