"""echo's own utils.py: same module name as hello's, different content."""


def describe(event):
    keys = sorted(event) if isinstance(event, dict) else []
    return f"echo-utils:{','.join(keys)}"
