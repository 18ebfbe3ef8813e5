"""Handlers of the helper stack's Lambda functions.

Each module exposes ``handler(event, context)``. Only the standard library, boto3 and
``plldb.protocol`` are imported, because the zip holds ``plldb/__init__.py``,
``plldb/protocol.py`` and ``plldb/lambdas/*.py`` and nothing else.
"""
