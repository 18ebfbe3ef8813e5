"""Handlers of the helper stack's Lambda functions.

Each module exposes ``handler(event, context)``. Only the standard library, boto3 and the
shared modules are imported, because the zip holds ``plldb/__init__.py``, the shared
``plldb/naming.py``, ``limits.py``, ``protocol.py`` and ``routing.py``
(``plldb.cloud.packaging.SHARED_MODULES``) and ``plldb/lambdas/**`` and nothing else.
"""
