"""The runtime shim layer: an exec wrapper and the shim it starts while a function is debugged.

Runs inside the debugged Lambda function: standard library and boto3 only. ``wrapper`` is
the ``AWS_LAMBDA_EXEC_WRAPPER``; ``shim.py`` is its Python entry point; ``loop`` serves the
Runtime API; ``cloud`` talks to the helper stack; ``polling`` holds the wait schedule.
See docs/shim.md.
"""
