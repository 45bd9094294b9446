"""The CLI reference (docs/cli.md), generated from the commands themselves."""

from __future__ import annotations

from typing import Any

import typer

from dunning.cli.app import app


def _commands(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    found = [(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            found.extend(_commands(sub, [*path, name]))
    return found


def _option(param: Any) -> str:
    names = ", ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts])
    help_text = " ".join((getattr(param, "help", None) or "").split())
    if param.param_type_name == "argument":
        names = f"`{param.name.upper()}`"
    default = getattr(param, "default", None)
    shown = ""
    if (
        param.param_type_name == "option"
        and not getattr(param, "is_flag", False)
        and default
        not in (
            None,
            (),
            [],
        )
    ):
        shown = f" (default: `{default}`)"
    required = " (required)" if getattr(param, "required", False) else ""
    return f"- {names}{required}{shown}: {help_text}".rstrip(": ")


def reference(app: typer.Typer) -> str:
    root = typer.main.get_command(app)
    lines = [
        "# Command-line reference",
        "",
        "Generated from the commands (`python -m dunning.cli.reference > docs/cli.md`); a test",
        "keeps it current. Every command takes `--help`; global options come before the",
        "command: `dunning [--project-dir DIR] [--debug] COMMAND ...`. Commands that print data",
        "take `--json`. Errors print one line and exit non-zero (1: a refused request, 2: a",
        "usage error); `--debug` shows the traceback.",
        "",
    ]
    for path, command in _commands(root, ["dunning"]):
        if len(path) == 1:
            heading = "## Global options"
        else:
            heading = f"{'#' * min(len(path), 4)} `{' '.join(path)}`"
        lines += [heading, ""]
        text = " ".join((command.help or "").split()) if command.help else ""
        if text:
            lines += [text, ""]
        params = [p for p in command.params if p.name not in ("help",) and not p.hidden]
        if params:
            lines += [_option(p) for p in params]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    print(reference(app), end="")


if __name__ == "__main__":
    main()
