"""Portable SQL pieces: the few constructs SQLite and PostgreSQL spell differently."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Integer, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.functions import GenericFunction


class days_between(GenericFunction[int]):
    """days_between(later, earlier) -> whole days, for DATE arguments."""

    type = Integer()
    inherit_cache = True


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return (
        f"CAST(julianday({compiler.process(later, **kw)}) - "
        f"julianday({compiler.process(earlier, **kw)}) AS INTEGER)"
    )


@compiles(days_between, "postgresql")
def _days_between_postgresql(element: days_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


def insert_ignoring_conflicts(
    connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *conflict: str
) -> None:
    """INSERT ... ON CONFLICT (cols) DO NOTHING, on either backend, as one executemany."""
    if not rows:
        return
    statement: Insert
    if connection.dialect.name == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    else:
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    connection.execute(statement, list(rows))


def chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def bulk_insert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT many rows with the same keys, in the caller's transaction.

    On PostgreSQL through COPY: one stream of rows, no statement text to build and parse for
    every few thousand rows (a fifth of a profiled import's time went into those statements).
    Values go through the columns' types as an INSERT's would, and columns the rows leave out
    get their Python-side defaults (SQLModel's), as an INSERT gives them.
    """
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), list(rows))
        return
    given = list(rows[0])
    defaults: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.name in rows[0] or default is None or not hasattr(default, "arg"):
            continue
        arg = default.arg
        defaults[column.name] = arg(None) if callable(arg) else arg
    names = given + list(defaults)
    processors = [table.c[name].type._cached_bind_processor(connection.dialect) for name in names]
    statement = "COPY {} ({}) FROM STDIN".format(
        _quoted(connection, table.name), ", ".join(_quoted(connection, name) for name in names)
    )
    fixed = list(defaults.values())
    cursor = connection.connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                values = [row[name] for name in given] + fixed
                copy.write_row(
                    [
                        value if process is None or value is None else process(value)
                        for value, process in zip(values, processors, strict=True)
                    ]
                )
    finally:
        cursor.close()


def _quoted(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote(name)
