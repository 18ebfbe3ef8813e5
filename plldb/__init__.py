"""PLLDB: the Python Lambda Local DeBugger.

Kept free of imports: this package's ``protocol`` and ``runner`` modules are bundled into
the helper Lambda zips and the runtime layer, where only the standard library exists.
"""

__version__ = "0.1.0"
