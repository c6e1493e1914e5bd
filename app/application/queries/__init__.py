"""Queries: they read the read models (balance view, history index), never an aggregate's events, except the
admin account detail, which reads the write model on purpose: it is the authoritative picture of lots and
allocations."""
