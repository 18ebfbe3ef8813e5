"""Command bodies of the `plldb` CLI: each parses its options and prints; the work happens in the packages below."""
