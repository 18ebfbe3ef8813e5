"""The runtime shim layer: an exec wrapper and the shim it starts while a function is debugged.

Runs inside the debugged Lambda function: standard library and boto3 only. ``wrapper`` is
the ``AWS_LAMBDA_EXEC_WRAPPER``; ``shim.py`` is its Python entry point; ``loop`` serves the
Runtime API; ``cloud`` talks to the helper stack; ``polling`` holds the wait schedule;
``table_reader`` reads one DynamoDB item without importing boto3 (the cold-start read),
signed by ``sigv4``.
See docs/shim.md.
"""
