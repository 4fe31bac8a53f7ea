"""Running and collecting: one block job (runner, supervise), the aggregate that
writes the tables, and status."""
