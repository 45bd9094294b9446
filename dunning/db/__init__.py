"""Persistence: the SQLModel tables, engines and migrations."""
