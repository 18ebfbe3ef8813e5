"""HelloFunction: greets the event's name, using its own utils, the layer and GREETING."""

import os

from common_helpers import stamp
from utils import describe

MODULE = "hello.app"


def handler(event, context):
    name = (event or {}).get("name", "world")
    return {
        "function": "hello",
        "module": MODULE,
        "greeting": f"{os.environ.get('GREETING', 'no-greeting')}, {name}!",
        "utils": describe(name),
        "layer": stamp("hello"),
    }
