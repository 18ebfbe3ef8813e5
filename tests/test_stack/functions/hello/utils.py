"""hello's own utils.py: same module name as echo's, different content."""


def describe(name):
    return f"hello-utils:{name.upper()}"
