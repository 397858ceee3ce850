"""The bridge's SQL: numbered migrations and the named queries of `queries.sql`.

Shipped inside the wheel as the package `bridge.sql` (see pyproject.toml), so an installed
bridge finds them with importlib.resources; admins find them here, at the top level.
"""
