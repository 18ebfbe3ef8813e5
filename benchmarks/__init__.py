"""PLLDB benchmarks on the local cloud: `make bench` (`python -m benchmarks`).

See docs/requirements/benchmarks-and-drills.md for what each figure means and its target.
"""
