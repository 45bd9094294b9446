"""Shared fixtures: the repository's own program directory and a fresh database per test.

Set DUNNING_TEST_DATABASE_URL to a PostgreSQL URL to run the database tests on PostgreSQL;
otherwise each test gets its own SQLite file, copied from one migrated template per session.

Every test that uses the database (the `database_url` fixture, directly or through `env`,
`runtime`, `flows_env`) is marked `postgres`: `scripts/test` runs those again on PostgreSQL
with `-m postgres`. A test that builds its own SQLite database opts out with `sqlite_only`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from dunning import crashpoints
from dunning.bootstrap import Runtime, bootstrap
from dunning.db.engine import create_db_engine, normalise_url, upgrade
from dunning.project import Project

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "database_url" in fixtures and item.get_closest_marker("sqlite_only") is None:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def _crash_points_counted_afresh() -> None:
    """A crash point's count of passes starts again with every test."""
    crashpoints.reset()


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_ready() -> str | None:
    url = os.environ.get("DUNNING_TEST_DATABASE_URL")
    if not url:
        return None
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        # Tests on several processes (pytest -n): each its own database on the same server,
        # since each test empties the whole database it uses.
        url = _worker_database(url, worker)
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP SCHEMA public CASCADE")
        connection.exec_driver_sql("CREATE SCHEMA public")
    upgrade(engine)
    engine.dispose()
    return url


def _worker_database(url: str, worker: str) -> str:
    """The URL of this xdist worker's database (created if absent) beside `url`'s."""
    base = make_url(normalise_url(url))
    name = f"{base.database}_{worker}"
    server = create_db_engine(url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        ).first()
        if exists is None:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    server.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _truncate_all(url: str) -> None:
    engine = create_db_engine(url)
    with engine.begin() as connection:
        names = [
            row[0]
            for row in connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            if row[0] != "alembic_version"
        ]
        if names:
            connection.exec_driver_sql(
                "TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY CASCADE"
            )
    engine.dispose()


@pytest.fixture
def database_url(tmp_path: Path, _sqlite_template: Path, _postgres_ready: str | None) -> str:
    if _postgres_ready:
        _truncate_all(_postgres_ready)
        return _postgres_ready
    path = tmp_path / "dunning.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def other_database_url(tmp_path: Path, _sqlite_template: Path, database_url: str) -> Iterator[str]:
    """A second migrated, empty database on the same backend, for comparing two runs of the
    same data: a copy of the SQLite template, or a new database on the PostgreSQL server."""
    if not database_url.startswith("postgresql"):
        path = tmp_path / "other.db"
        shutil.copyfile(_sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    name = f"dunning_other_{uuid.uuid4().hex[:10]}"
    server = create_db_engine(database_url, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(normalise_url(database_url)).set(database=name)
    other = url.render_as_string(hide_password=False)
    engine = create_db_engine(other)
    upgrade(engine)
    engine.dispose()
    try:
        yield other
    finally:
        with server.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Path:
    """Point Dunning at the repository's program directory and this test's database/state."""
    state = tmp_path / "state"
    monkeypatch.setenv("DUNNING_PROJECT_DIR", str(REPO))
    monkeypatch.setenv("DUNNING_DATABASE_URL", database_url)
    monkeypatch.setenv("DUNNING_STATE_DIR", str(state))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return state


@pytest.fixture
def runtime(env: Path) -> Iterator[Runtime]:
    rt = bootstrap(project=Project(REPO))
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for every flow test of the session (it takes seconds)."""
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def flows_env(env: Path, prefect_harness: None) -> Iterator[Path]:
    """A flow test: the harness, this test's database, and no environments cached from others."""
    from flows import _runtime

    _runtime.reset()
    yield env
    _runtime.reset()
