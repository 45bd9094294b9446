"""The root `dunning` command: global options, sub-command groups, one-line errors."""

from __future__ import annotations

import os
import re
import sys
import traceback
from pathlib import Path

import typer
from rich.markup import escape
from sqlalchemy.exc import StatementError
from typer.exceptions import TyperException

from dunning.cli import (
    commands_data,
    commands_db,
    commands_demo,
    commands_gateway,
    commands_legal,
    commands_lifecycle,
    commands_ops,
    commands_run,
    commands_templates,
)
from dunning.cli._common import STATE, err_console
from dunning.errors import DunningError
from dunning.logs import configure_logging
from dunning.masking import mask_text

app = typer.Typer(
    name="dunning",
    help="Dunning: collections communications for consumer lenders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    project_dir: Path | None = typer.Option(
        None,
        "--project-dir",
        help="Program directory (holds dunning.yaml). Default: $DUNNING_PROJECT_DIR, "
        "else the nearest parent of the current directory that has dunning.yaml.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    STATE.project_dir = project_dir
    STATE.debug = debug or os.environ.get("DUNNING_DEBUG") == "1"

    # Structured logs with personal data masked, for every command. Commands print their own
    # results; logs are for warnings unless DUNNING_LOG_LEVEL asks for more.
    configure_logging(level=os.environ.get("DUNNING_LOG_LEVEL", "WARNING"))


commands_db.register(app)
commands_data.register(app)
commands_run.register(app)
commands_demo.register(app)
commands_lifecycle.register(app)
commands_gateway.register(app)
commands_templates.register(app)
commands_legal.register(app)
commands_ops.register(app)


_QUOTED = re.compile(r"""(?P<q>["'])(?P<text>.*?)(?P=q)""")
_IDENTIFIER = re.compile(r"(ix|uq|pk|fk|ck)_[a-z0-9_]+|[a-z]+(_[a-z0-9]+)+")


def _unquoted(text: str) -> str:
    """Quoted values replaced by '…': a driver's message can quote the value it refused
    (`invalid input syntax for type integer: "Barnaby Quillfeather"`). Names of constraints
    and snake_case columns stay, since they say what went wrong and are not personal data."""

    def hide(match: re.Match[str]) -> str:
        if _IDENTIFIER.fullmatch(match.group("text")):
            return match.group(0)
        return f"{match.group('q')}…{match.group('q')}"

    return mask_text(_QUOTED.sub(hide, text))


def _safe_message(exc: BaseException) -> str:
    """An unexpected error's first line, without parameters or quoted values (which could
    carry PII): only its class and the shape of what went wrong."""

    if isinstance(exc, StatementError):
        first = str(exc.orig).splitlines()[0] if str(exc.orig) else ""
        return f"database error: {type(exc.orig).__name__}: {_unquoted(first)}"
    return f"{type(exc).__name__}: {_unquoted(str(exc).splitlines()[0]) if str(exc) else ''}"


def run(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, standalone_mode=False)
        code = 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        err_console.print("aborted")
        code = 130
    except TyperException as exc:  # usage errors: bad or missing parameters
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err_console.print(f"error: {exc.format_message()}", highlight=False)
        code = exc.exit_code
    except DunningError as exc:
        if STATE.debug:
            traceback.print_exc()
        # The message is text, not markup: a "[/prefix]" in it must not be read as a tag.
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        code = 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        code = 130
    except Exception as exc:
        if STATE.debug:
            traceback.print_exc()
        err_console.print(
            f"[red]error:[/red] unexpected {escape(_safe_message(exc))} "
            "(run with --debug for details)",
            highlight=False,
            soft_wrap=True,
        )
        code = 2
    finally:
        STATE.close()
    sys.exit(code)


def main() -> None:
    """The `dunning` command (pyproject.toml [project.scripts])."""
    run()
