"""Adapters that keep everything in process memory: for unit tests, and as the embedded profile's read models."""
