"""What every SQL event store shares: the tables (SQLAlchemy Core), the statements compiled per dialect, and the rows
one append writes. The stores themselves are per technology: :mod:`app.adapters.sqlite`, :mod:`app.adapters.mysql`."""
