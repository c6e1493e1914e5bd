"""Pure point rules: the account aggregate, its events and its policy. No infrastructure imports."""
