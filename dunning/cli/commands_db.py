"""`dunning db ...` and `dunning config check`."""

from __future__ import annotations

import typer
from rich.table import Table

from dunning.cli._common import STATE, JsonOption, console, print_json
from dunning.config import check_directory
from dunning.db.engine import schema_is_current, upgrade
from dunning.errors import ConfigError
from dunning.services.program import extra_config_checks


def register(app: typer.Typer) -> None:
    db = typer.Typer(help="The database: schema migrations.", no_args_is_help=True)
    config = typer.Typer(help="The YAML configuration under config/.", no_args_is_help=True)
    app.add_typer(db, name="db")
    app.add_typer(config, name="config")

    @db.command("upgrade")
    def db_upgrade() -> None:
        """Apply every pending migration (also done automatically on first use)."""
        runtime = STATE.runtime(migrate=False)
        upgrade(runtime.engine)
        console.print(f"database is at the latest schema: {runtime.engine.url.get_backend_name()}")

    @db.command("status")
    def db_status(as_json: bool = JsonOption) -> None:
        """Say which database is used and whether its schema is current."""
        runtime = STATE.runtime(migrate=False)
        data = {
            "backend": runtime.engine.url.get_backend_name(),
            "database": runtime.engine.url.render_as_string(hide_password=True),
            "current": schema_is_current(runtime.engine),
        }
        if as_json:
            print_json(data)
        else:
            state = "current" if data["current"] else "needs `dunning db upgrade`"
            console.print(f"{data['database']}: schema {state}")

    @config.command("check")
    def config_check(as_json: bool = JsonOption) -> None:
        """Validate every YAML file under config/; name file, key and reason for each problem."""

        project = STATE.project()
        problems = check_directory(project.config_dir, project.root, extra_config_checks(project))
        if as_json:
            print_json({"ok": not problems, "problems": [p.__dict__ for p in problems]})
        elif not problems:
            console.print(f"config OK: {project.config_dir}")
        else:
            table = Table("file", "key", "problem")
            for problem in problems:
                table.add_row(problem.file, problem.key, problem.reason)
            console.print(table)
        if problems:
            raise ConfigError(problems)
