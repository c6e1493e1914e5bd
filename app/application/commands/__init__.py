"""Commands: each loads one account, lets the domain decide and appends the new events with their outbox rows."""
