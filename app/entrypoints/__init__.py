"""Thin entry points: the HTTP server, the CLI."""
