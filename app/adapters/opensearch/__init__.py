"""The history index on OpenSearch (the stack's analytical read model)."""
