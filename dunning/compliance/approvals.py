"""Template approvals: who approved which exact template text, kept in templates/approvals.yaml.

    book = ApprovalBook.load(project.templates_dir.parent)      # templates/
    book.is_approved(ref.id, ref.content_hash)                   # dispatch holds when False

Fail closed: a template is approved only when its current content hash (file bytes, plus the
CSS for letters) is the hash of its latest approval. The file's bytes include its front matter,
so a changed vendor block (an Aliyun template code or parameter) needs approving again, while
templates without one keep their approvals. No file means nothing is approved; an
invalid file is a ConfigError (nothing runs). One entry per template id: approving again
replaces the entry and moves the previous one into its `history`. The approved text is kept
beside the hash, so `dunning templates status` can show what changed since.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from dunning.compliance.lint import Finding, Linter
from dunning.config import load_file
from dunning.errors import TemplateError
from dunning.rendering import TemplateRef, TemplateStore

FILE_NAME = "approvals.yaml"
HEADER = """\
# Compliance approvals of the message templates in templates/messages/.
# Written by `dunning templates approve`; commit it with the templates it approves.
# Dispatch holds (reason template_unapproved) every message whose template's content hash is
# not the content_hash of that template's entry here. Do not edit by hand.
"""

State = Literal["approved", "changed", "never approved"]


class ApprovalRecord(BaseModel):
    """One approval of one version of a template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    reviewer: str = Field(min_length=1, max_length=80, pattern=r"^[^\s].*$")
    approved_at: AwareDatetime
    note: str = ""
    forced: bool = Field(default=False, description="approved with lint errors (--force)")
    lint_errors: list[str] = Field(
        default_factory=list, description="rule ids of the lint errors a forced approval overrode"
    )


class Approval(ApprovalRecord):
    """The latest approval of a template: the record, the approved text and earlier ones."""

    source: str = Field(description="the template file's text as approved")
    css: str | None = Field(
        default=None,
        description="letters: the text of the layout modules they import (templates/typst/) as "
        "approved (the key keeps its name from the HTML letters' stylesheet)",
    )
    history: list[ApprovalRecord] = Field(
        default_factory=list, description="earlier approvals, newest first"
    )

    def record(self) -> ApprovalRecord:
        return ApprovalRecord.model_validate(
            self.model_dump(include=set(ApprovalRecord.model_fields))
        )


class ApprovalsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    approvals: dict[str, Approval] = Field(default_factory=dict)


@dataclass(frozen=True)
class TemplateStatus:
    template_id: str
    state: State
    content_hash: str
    approval: Approval | None
    diff: str
    """Unified diff from the approved text to the current one ("" unless changed)."""

    def as_dict(self) -> dict[str, object]:
        approval = self.approval
        return {
            "template": self.template_id,
            "state": self.state,
            "content_hash": self.content_hash,
            "approved_hash": approval.content_hash if approval else None,
            "reviewer": approval.reviewer if approval else None,
            "approved_at": approval.approved_at.isoformat() if approval else None,
            "note": approval.note if approval else None,
            "forced": approval.forced if approval else None,
            "diff": self.diff,
        }


class ApprovalBook:
    """The approvals of one program directory's templates (templates/approvals.yaml)."""

    def __init__(self, approvals: Mapping[str, Approval] | None = None) -> None:
        self._approvals: dict[str, Approval] = dict(approvals or {})

    @classmethod
    def load(cls, templates_root: Path) -> ApprovalBook:
        """Read `templates_root`/approvals.yaml (`templates_root` is templates/, the parent of
        templates/messages/). An absent file is an empty book; an invalid one a ConfigError."""
        path = templates_root / FILE_NAME
        if not path.exists():
            return cls()
        return cls(load_file(path, ApprovalsFile, templates_root.parent).approvals)

    def is_approved(self, template_id: str, content_hash: str) -> bool:
        approval = self._approvals.get(template_id)
        return approval is not None and approval.content_hash == content_hash

    def get(self, template_id: str) -> Approval | None:
        return self._approvals.get(template_id)

    def ids(self) -> list[str]:
        return sorted(self._approvals)

    def approve(
        self,
        ref: TemplateRef,
        *,
        reviewer: str,
        note: str = "",
        at: datetime | None = None,
        forced: bool = False,
        lint_errors: Iterable[str] = (),
    ) -> Approval:
        """Record an approval of the template as it is now (call save() to keep it)."""
        previous = self._approvals.get(ref.id)
        history = [previous.record(), *previous.history] if previous else []
        try:
            approval = Approval(
                content_hash=ref.content_hash,
                reviewer=reviewer.strip(),
                approved_at=(at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0),
                note=note.strip(),
                forced=forced,
                lint_errors=sorted(set(lint_errors)),
                source=ref.source,
                css=ref.css,
                history=history,
            )
        except ValidationError as exc:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise TemplateError(f"cannot approve {ref.id}: {reasons}") from None
        self._approvals[ref.id] = approval
        return approval

    def save(self, templates_root: Path) -> Path:
        """Write the book to `templates_root`/approvals.yaml (atomically)."""
        path = templates_root / FILE_NAME
        data = ApprovalsFile(approvals=dict(sorted(self._approvals.items()))).model_dump(
            mode="json", exclude_defaults=False
        )
        text = HEADER + yaml.dump(
            data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100
        )
        if ApprovalsFile.model_validate(yaml.safe_load(text)).approvals != self._approvals:
            raise TemplateError(f"{path}: the approvals would not read back as written")
        descriptor, temporary = tempfile.mkstemp(prefix=".approvals.", dir=templates_root)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path

    def status(self, ref: TemplateRef) -> TemplateStatus:
        approval = self._approvals.get(ref.id)
        if approval is None:
            return TemplateStatus(ref.id, "never approved", ref.content_hash, None, "")
        if approval.content_hash == ref.content_hash:
            return TemplateStatus(ref.id, "approved", ref.content_hash, approval, "")
        return TemplateStatus(ref.id, "changed", ref.content_hash, approval, _diff(ref, approval))


def template_statuses(store: TemplateStore, book: ApprovalBook) -> list[TemplateStatus]:
    """Every template of the store, approved, changed since approval, or never approved."""
    return [book.status(ref) for ref in store.all()]


def stale_approvals(store: TemplateStore, book: ApprovalBook) -> list[str]:
    """Approved template ids that no longer exist in the store (renamed or removed)."""
    current = {ref.id for ref in store.all()}
    return [template_id for template_id in book.ids() if template_id not in current]


def _diff(ref: TemplateRef, approval: Approval) -> str:
    stamp = f"approved {approval.approved_at:%Y-%m-%d %H:%M}Z by {approval.reviewer}"
    parts = [
        difflib.unified_diff(
            approval.source.splitlines(keepends=True),
            ref.source.splitlines(keepends=True),
            fromfile=f"{ref.id} ({stamp})",
            tofile=f"{ref.id} (now)",
        )
    ]
    if (approval.css or "") != (ref.css or ""):
        parts.append(
            difflib.unified_diff(
                (approval.css or "").splitlines(keepends=True),
                (ref.css or "").splitlines(keepends=True),
                fromfile=f"{ref.id} layout ({stamp})",
                tofile=f"{ref.id} layout (now)",
            )
        )
    lines = [line if line.endswith("\n") else line + "\n" for part in parts for line in part]
    return "".join(lines)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the approved texts) as literal blocks, so the file diffs well."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def approve_template(
    templates_root: Path,
    linter: Linter,
    template_id: str,
    *,
    reviewer: str,
    note: str = "",
    force: bool = False,
    at: datetime | None = None,
) -> tuple[Approval, list[Finding]]:
    """Lint the template, then record its approval in `templates_root`/approvals.yaml.

    Refused (TemplateError) when lint finds errors, unless `force`; `force` needs a note saying
    why, and the approval records which rules it overrode. Returns the approval and the lint
    findings.
    """
    ref = linter.store.get(template_id)
    findings = linter.lint(ref)
    errors = [finding for finding in findings if finding.severity == "error"]
    if force and not note.strip():
        raise TemplateError("--force needs a --note saying why the template is approved anyway")
    if errors and not force:
        rules = ", ".join(sorted({finding.rule for finding in errors}))
        raise TemplateError(
            f"{template_id} has {len(errors)} lint error(s) ({rules}): fix them (see "
            "`dunning templates lint`), or approve with --force and a --note saying why"
        )
    book = ApprovalBook.load(templates_root)
    approval = book.approve(
        ref,
        reviewer=reviewer,
        note=note,
        at=at,
        forced=bool(errors),
        lint_errors=[finding.rule for finding in errors],
    )
    book.save(templates_root)
    return approval, findings
