"""Builds everything a command or flow needs, in one place: project, config, database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine

from adapters.registry import check_actions, check_channels
from dunning.config.runners import load_runners
from dunning.db.engine import create_db_engine, ensure_schema
from dunning.errors import ConfigError
from dunning.project import Project
from dunning.services.runs.book import Liveness, RunBook


@dataclass
class Runtime:
    project: Project
    engine: Engine
    runs: RunBook
    """Starts, finishes and fails every run (dunning.services.run_book)."""
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
    check_adapters(project)
    engine = create_db_engine(database_url or project.database_url)
    if migrate:
        ensure_schema(engine)
    return Runtime(project=project, engine=engine, runs=run_book(engine, project))


def check_adapters(project: Project) -> None:
    """Refuse to start on adapters config cannot name: unknown ones, or options they refuse.

    The config models do not check adapters (config imports no adapter), so the registry checks
    them here, before anything runs or is written; ConfigError names file, key and reason.
    """
    problems = check_channels(project.channels) + check_actions(project.actions)
    if problems:
        raise ConfigError(problems)


def run_book(engine: Engine, project: Project) -> RunBook:
    """The run lifecycle with the heartbeat of config/runners.yaml."""
    settings = load_runners(project.config_dir, project.root).runs
    return RunBook(
        engine,
        Liveness(
            heartbeat=timedelta(seconds=settings.heartbeat_seconds),
            abandoned_after=timedelta(seconds=settings.abandoned_after_seconds),
        ),
    )
