"""`dunning templates`: lint, preview, approve and status of the message templates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from dunning.cli._common import STATE, JsonOption, console, print_json
from dunning.compliance import (
    ApprovalBook,
    Linter,
    LintRules,
    approve_template,
    build_gallery,
    has_errors,
    stale_approvals,
    template_statuses,
)
from dunning.errors import TemplateError
from dunning.rendering import TemplateStore

if TYPE_CHECKING:
    from dunning.compliance import Linter

STATE_STYLES = {"approved": "green", "changed": "yellow", "never approved": "red"}


def register(app: typer.Typer) -> None:
    templates = typer.Typer(
        help="Message templates: lint, preview, approve, status.", no_args_is_help=True
    )
    app.add_typer(templates, name="templates")

    @templates.command("lint")
    def lint(
        template_ids: list[str] | None = typer.Argument(
            None, metavar="[TEMPLATE_ID]...", help="e.g. sms/early/reminder.en-US; default all"
        ),
        json_out: bool = JsonOption,
    ) -> None:
        """Check templates against the policy packs; exit 1 when any finding is an error."""

        linter = _linter()
        findings = linter.lint_all(template_ids or None)
        checked = len(template_ids) if template_ids else len(linter.store.all())
        errors = sum(1 for finding in findings if finding.severity == "error")
        warnings = len(findings) - errors
        if json_out:
            root = STATE.project().root
            print_json(
                {
                    "templates": checked,
                    "errors": errors,
                    "warnings": warnings,
                    "findings": [
                        {
                            **finding.as_dict(),
                            "path": str(
                                linter.store.get(finding.template_id).path.relative_to(root)
                            ),
                        }
                        for finding in findings
                    ],
                }
            )
        else:
            for finding in findings:
                style = "red" if finding.severity == "error" else "yellow"
                console.print(
                    f"{escape(finding.template_id)}:{finding.line}  "
                    f"[{style}]{finding.severity}[/{style}]  {finding.rule}  "
                    f"{escape(finding.message)}",
                    highlight=False,
                    soft_wrap=True,
                )
            console.print(
                f"{checked} template(s): {errors} error(s), {warnings} warning(s)", highlight=False
            )
        if has_errors(findings):
            # A DunningError, not typer.Exit (whose code `run` does not see): exit status 1.
            raise TemplateError(f"lint found {errors} error(s)")

    @templates.command("approve")
    def approve(
        template_id: str = typer.Argument(..., help="e.g. sms/early/reminder.en-US"),
        reviewer: str = typer.Option(..., "--reviewer", help="who approves (recorded)"),
        note: str = typer.Option("", "--note", help="why, or what was checked (recorded)"),
        force: bool = typer.Option(
            False, "--force", help="approve despite lint errors (needs --note)"
        ),
    ) -> None:
        """Approve a template as it is now, in templates/approvals.yaml (commit that file).

        Records the content hash, the reviewer, the time (UTC), the note and the approved text.
        Refused when lint finds errors, unless --force with a --note.
        """

        project = STATE.project()
        approval, findings = approve_template(
            project.templates_dir.parent,
            _linter(),
            template_id,
            reviewer=reviewer,
            note=note,
            force=force,
        )
        forced = (
            f" [red]despite lint errors ({', '.join(approval.lint_errors)})[/red]"
            if approval.forced
            else ""
        )
        console.print(
            f"approved {escape(template_id)} ({approval.content_hash[:12]}) by "
            f"{escape(approval.reviewer)} at "
            f"{approval.approved_at:%Y-%m-%d %H:%M}Z{forced}; commit templates/approvals.yaml",
            highlight=False,
            soft_wrap=True,
        )
        warnings = [finding for finding in findings if finding.severity == "warning"]
        for finding in warnings:
            console.print(
                f"  warning: {finding.rule} line {finding.line}: {escape(finding.message)}",
                highlight=False,
                soft_wrap=True,
            )

    @templates.command("status")
    def status(
        json_out: bool = JsonOption,
        check: bool = typer.Option(
            False, "--check", help="exit 1 unless every template is approved as it is now"
        ),
    ) -> None:
        """Each template: approved, changed since approval (with the diff), or never approved."""

        project = STATE.project()
        store = TemplateStore(project.templates_dir)
        book = ApprovalBook.load(project.templates_dir.parent)
        statuses = template_statuses(store, book)
        stale = stale_approvals(store, book)
        if json_out:
            print_json(
                {
                    "templates": [item.as_dict() for item in statuses],
                    "approvals_without_template": stale,
                }
            )
        else:
            for item in statuses:
                style = STATE_STYLES[item.state]
                line = f"[{style}]{item.state:<15}[/{style}] {escape(item.template_id)}"
                if item.approval is not None:
                    line += (
                        f"  ({escape(item.approval.reviewer)}, "
                        f"{item.approval.approved_at:%Y-%m-%d %H:%M}Z"
                        f"{', forced' if item.approval.forced else ''})"
                    )
                console.print(line, highlight=False, soft_wrap=True)
            for item in statuses:
                if item.diff:
                    console.print(
                        f"\n[bold]{escape(item.template_id)}[/bold] changed since approval:"
                    )
                    console.print(item.diff, markup=False, highlight=False, soft_wrap=True, end="")
            for template_id in stale:
                console.print(
                    f"approval without a template (renamed or removed): {escape(template_id)}"
                )
            counts = {state: sum(1 for i in statuses if i.state == state) for state in STATE_STYLES}
            console.print(
                ", ".join(f"{count} {state}" for state, count in counts.items()), highlight=False
            )
        pending = sum(1 for item in statuses if item.state != "approved")
        if check and pending:
            raise TemplateError(f"{pending} template(s) not approved as they are now")

    @templates.command("preview")
    def preview(
        out: Path = typer.Option(..., "--out", help="directory for index.html and its files"),
    ) -> None:
        """Render every template with sample accounts into a static HTML gallery."""

        project = STATE.project()
        gallery = build_gallery(
            out,
            _linter(),
            ApprovalBook.load(project.templates_dir.parent),
            title=f"{project.settings.name}: message templates",
        )
        note = "" if gallery.thumbnails else " (no letter thumbnails: pdftoppm is not installed)"
        console.print(
            f"wrote {escape(str(gallery.index))} and {len(gallery.files) - 1} other file(s){note}",
            highlight=False,
            soft_wrap=True,
        )


def _linter() -> Linter:

    project = STATE.project()
    return Linter(TemplateStore(project.templates_dir), LintRules.from_project(project))
