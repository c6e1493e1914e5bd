"""Protocols the application needs from the outside world, with the data types that cross them."""
