"""What every command shares: the runtime, JSON output, progress bars and error handling."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dunning.bootstrap import Runtime, bootstrap, outreach
from dunning.db.models import utcnow
from dunning.project import Project
from dunning.services.daily import Outreach

console = Console()
err_console = Console(stderr=True)


@dataclass
class State:
    project_dir: Path | None = None
    debug: bool = False
    clock: Callable[[], datetime] = utcnow
    """What `now` is for the commands' runs: the wall clock; tests that drive the CLI in
    process set another here, the one seam for time."""
    _runtime: Runtime | None = field(default=None, repr=False)

    def project(self) -> Project:
        if self._runtime is not None:
            return self._runtime.project
        return Project.find(self.project_dir)

    def runtime(self, migrate: bool = True) -> Runtime:
        if self._runtime is None:
            self._runtime = bootstrap(self.project_dir, migrate=migrate)
        return self._runtime

    @contextmanager
    def outreach(self) -> Iterator[Outreach]:
        """The daily run's planner and dispatcher, for a command that runs without Prefect."""
        parts = outreach(self.runtime(), clock=self.clock)
        try:
            yield parts
        finally:
            parts.close()

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None


STATE = State()

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def today() -> date:
    return date.today()


def as_of_option(help_text: str = "Business date (YYYY-MM-DD); default today.") -> Any:
    return typer.Option(None, "--as-of", help=help_text, formats=["%Y-%m-%d"])


def _default(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_default, ensure_ascii=False, indent=2) + "\n")


@contextmanager
def progress_bar(
    description: str, total: int | None, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields an `advance(n)` callback."""
    if not enabled or not err_console.is_terminal:
        yield lambda _n: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
