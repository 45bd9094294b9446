"""Message rendering: templates by channel, tier and locale; sandboxed Jinja; letter PDFs.

    store = TemplateStore(project.templates_dir)
    ref = store.find("sms", "early", "reminder", "zh-CN")
    message = Renderer(store, formats).render(ref, context)  # RenderedMessage(subject, text, typst)
    pdf = LetterPrinter().pdf(message)                   # letters only

Template layout, front matter and CSS: `_store` and `_metadata`; vendor metadata and the texts
registered with vendors (Aliyun): `_vendor`; what each channel's template
yields and the filters: `_renderer`; PDFs: `_pdf`.
"""

from __future__ import annotations

from dunning.rendering._documents import render_document
from dunning.rendering._formatting import format_date, format_money, mask
from dunning.rendering._metadata import STEP_VARIABLES, Purpose, TemplateMetadata, context_paths
from dunning.rendering._pdf import LetterPrinter
from dunning.rendering._renderer import RenderedMessage, Renderer, template_variables
from dunning.rendering._samples import (
    DEMO_LENDER,
    SAMPLE_AS_OF,
    SAMPLE_DEADLINES,
    sample_context,
    sample_dpds,
    sample_extra,
)
from dunning.rendering._store import TemplateRef, TemplateStore
from dunning.rendering._typst import TYPST_MARKER
from dunning.rendering._vendor import (
    AliyunTemplate,
    RegisteredTemplate,
    RegisteredTexts,
    VendorBlock,
    aliyun_text,
    first_difference,
    placeholders,
)
from dunning.rendering.context import (
    AccountView,
    AddressView,
    Amounts,
    CustomerView,
    Deadlines,
    InstalmentTerms,
    LenderView,
    MessageContext,
    PlanTerms,
    PromiseTerms,
    ValidationNotice,
)

__all__ = [
    "DEMO_LENDER",
    "SAMPLE_AS_OF",
    "SAMPLE_DEADLINES",
    "STEP_VARIABLES",
    "TYPST_MARKER",
    "AccountView",
    "AddressView",
    "AliyunTemplate",
    "Amounts",
    "CustomerView",
    "Deadlines",
    "InstalmentTerms",
    "LenderView",
    "LetterPrinter",
    "MessageContext",
    "PlanTerms",
    "PromiseTerms",
    "Purpose",
    "RegisteredTemplate",
    "RegisteredTexts",
    "RenderedMessage",
    "Renderer",
    "TemplateMetadata",
    "TemplateRef",
    "TemplateStore",
    "ValidationNotice",
    "VendorBlock",
    "aliyun_text",
    "context_paths",
    "first_difference",
    "format_date",
    "format_money",
    "mask",
    "placeholders",
    "render_document",
    "sample_context",
    "sample_dpds",
    "sample_extra",
    "template_variables",
]
