"""Builds everything a command or flow needs, in one place: project, config, database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine

from dunning.db.engine import create_db_engine, ensure_schema
from dunning.project import Project


@dataclass
class Runtime:
    project: Project
    engine: Engine
    _closed: bool = field(default=False, repr=False)

    @contextmanager
    def unit_of_work(self) -> Iterator[Connection]:
        """A transaction that commits on success and rolls back on any exception."""
        with self.engine.begin() as connection:
            yield connection

    def close(self) -> None:
        if not self._closed:
            self.engine.dispose()
            self._closed = True


def bootstrap(
    project_dir: Path | None = None,
    *,
    project: Project | None = None,
    database_url: str | None = None,
    migrate: bool = True,
) -> Runtime:
    project = project or Project.find(project_dir)
    engine = create_db_engine(database_url or project.database_url)
    if migrate:
        ensure_schema(engine)
    return Runtime(project=project, engine=engine)
