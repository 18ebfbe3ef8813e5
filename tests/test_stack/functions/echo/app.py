"""EchoFunction: returns the event back, marked by its own utils module."""

from utils import describe

MODULE = "echo.app"


def handler(event, context):
    return {
        "function": "echo",
        "module": MODULE,
        "echo": event,
        "utils": describe(event),
    }
