"""Keeping invocations and running them again: capture records, `plldb invoke`, `plldb replay`."""
