"""The runtime every service runs in: the program directory, its database and its run book.

Built once per process by `dunning.bootstrap.bootstrap()`; passed to the services that need the
program's configuration beside the database (a flow's run, the legal escalation).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine

from dunning.project import Project
from dunning.services.runs.book import RunBook


@dataclass
class Runtime:
    project: Project
    engine: Engine
    runs: RunBook
    """Starts, finishes and fails every run (dunning.services.runs)."""
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
