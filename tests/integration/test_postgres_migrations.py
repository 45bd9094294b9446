"""Migrations on both backends: from an empty database to the head, down to nothing and up again,
and the migrated schema is exactly the one the models describe.

The test database of the session is already migrated, so each test here makes an empty database
of its own: a fresh SQLite file, or a new PostgreSQL database on the test server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import dunning.db.tables  # noqa: F401  (every table on SQLModel.metadata)
from dunning.db.engine import create_db_engine, normalise_url, schema_is_current, upgrade


@pytest.fixture
def empty_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database on the same backend as the test database."""
    if make_url(database_url).get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"dunning_migrations_{uuid.uuid4().hex[:8]}"
    server = create_db_engine(database_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(normalise_url(database_url))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


def schema_differences(url: str) -> list[Any]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def test_migrations_apply_to_an_empty_database_and_the_schema_is_current(
    empty_database: str,
) -> None:
    engine = create_db_engine(empty_database)
    try:
        assert not schema_is_current(engine)
        upgrade(engine)
        assert schema_is_current(engine)
        tables = set(inspect(engine).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
        upgrade(engine)  # applying again is a no-op
        assert schema_is_current(engine)
    finally:
        engine.dispose()
    assert schema_differences(empty_database) == []


def test_migrations_go_down_to_nothing_and_up_again(empty_database: str) -> None:
    from alembic import command

    from dunning.db.engine import _alembic_config

    engine = create_db_engine(empty_database)
    try:
        upgrade(engine)
        config = _alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert schema_is_current(engine)
    finally:
        engine.dispose()
    assert schema_differences(empty_database) == []


def test_sessions_are_set_up_for_batch_work(database_url: str) -> None:
    """SQLite: WAL, enforced foreign keys. PostgreSQL: no JIT (it compiled every batch's select
    for longer than the select ran), unless the URL's own options turn it back on."""
    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        else:
            assert connection.exec_driver_sql("SHOW jit").scalar() == "off"
    engine.dispose()
    if engine.dialect.name == "sqlite":
        return
    url = make_url(normalise_url(database_url)).update_query_dict(
        {"options": "-c jit=on -c work_mem=8MB"}
    )
    engine = create_db_engine(url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW jit").scalar() == "on"
        assert connection.exec_driver_sql("SHOW work_mem").scalar() == "8MB"
    engine.dispose()
