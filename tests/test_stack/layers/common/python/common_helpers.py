"""Layer module (unpacked to /opt/python in Lambda): proves layer code is importable."""


def stamp(caller):
    return f"common-layer:{caller}"
