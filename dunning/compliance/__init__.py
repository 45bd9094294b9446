"""Compliance for message templates: lint against the policy packs, approvals, previews.

    rules = LintRules.from_project(project)
    linter = Linter(TemplateStore(project.templates_dir), rules)
    findings = linter.lint_all()                               # lint: Finding per problem
    book = ApprovalBook.load(project.templates_dir.parent)     # templates/approvals.yaml
    book.is_approved(ref.id, ref.content_hash)                 # fail closed at plan and dispatch
    build_gallery(out_dir, linter, book)                       # the static HTML preview

`lint` holds the rules (RULES lists every rule id), `approvals` the approval book and the
approve workflow, `preview` the gallery, `sms` the GSM-7/UCS-2 arithmetic.
"""

from __future__ import annotations

from dunning.compliance.approvals import (
    Approval,
    ApprovalBook,
    ApprovalRecord,
    TemplateStatus,
    approve_template,
    stale_approvals,
    template_statuses,
)
from dunning.compliance.lint import (
    RULES,
    Finding,
    Linter,
    LintRules,
    Sample,
    has_errors,
    phrase_pattern,
    push_payload,
)
from dunning.compliance.preview import Gallery, build_gallery
from dunning.compliance.sms import SmsLength, sms_length

__all__ = [
    "RULES",
    "Approval",
    "ApprovalBook",
    "ApprovalRecord",
    "Finding",
    "Gallery",
    "LintRules",
    "Linter",
    "Sample",
    "SmsLength",
    "TemplateStatus",
    "approve_template",
    "build_gallery",
    "has_errors",
    "phrase_pattern",
    "push_payload",
    "sms_length",
    "stale_approvals",
    "template_statuses",
]
