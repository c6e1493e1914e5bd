"""Use cases: commands that change accounts and queries that read the read models."""
