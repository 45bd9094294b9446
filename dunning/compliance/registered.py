"""The texts registered with vendors that send only registered templates: templates/registered/.

    texts = load_registered(project.templates_dir.parent, project.root)   # or None
    problem = aliyun_drift(ref, texts, params, body)                      # None when they agree

templates/registered/aliyun.yaml keeps a copy of the Aliyun SMS console: the signature
(`sign_name`) and each template code's text with its ${name} parameters. Aliyun sends
`【sign_name】` + that text with the parameters filled in, whatever our Jinja text says; lint
(and the daily run, for every message) checks that the two are the same text.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dunning.config import load_file
from dunning.rendering import RegisteredTexts, TemplateRef, first_difference, placeholders

REGISTERED_DIR = "registered"
ALIYUN_FILE = f"{REGISTERED_DIR}/aliyun.yaml"
"""Relative to templates/ (the parent of templates/messages/), like approvals.yaml."""


def load_registered(templates_root: Path, root: Path | None = None) -> RegisteredTexts | None:
    """templates/registered/aliyun.yaml, or None when there is none; ConfigError (file, key,
    reason) when it is invalid."""
    path = templates_root / ALIYUN_FILE
    if not path.exists():
        return None
    return load_file(path, RegisteredTexts, root)


def aliyun_problems(ref: TemplateRef, texts: RegisteredTexts | None) -> list[tuple[str, str]]:
    """What is wrong between a template's `vendor.aliyun` block and the registered text, before
    rendering: (key, reason) pairs, the key a front matter path; [] when it fits."""
    vendor = ref.metadata.vendor
    block = vendor.aliyun if vendor is not None else None
    if block is None:
        return []
    code = block.template_code
    if texts is None:
        return [
            (
                "vendor.aliyun.template_code",
                f"{code} is not registered: there is no templates/{ALIYUN_FILE}",
            )
        ]
    registered = texts.templates.get(code)
    if registered is None:
        return [("vendor.aliyun.template_code", f"{code} is not in templates/{ALIYUN_FILE}")]
    used = placeholders(registered.text)
    problems = [
        (
            "vendor.aliyun.params",
            f"the registered text of {code} uses ${{{name}}}, which vendor.aliyun.params does "
            "not declare",
        )
        for name in used
        if name not in block.params
    ]
    problems += [
        (
            f"vendor.aliyun.params.{name}",
            f"declared, but the registered text of {code} does not use ${{{name}}}",
        )
        for name in block.params
        if name not in used
    ]
    return problems


def aliyun_drift(
    ref: TemplateRef, texts: RegisteredTexts, params: Mapping[str, str], body: str
) -> int | None:
    """Where what Aliyun sends (the registered text with these parameters) first differs from
    the template's rendered `body`; None when they are the same text (or the template has no
    registered Aliyun text: see aliyun_problems)."""
    vendor = ref.metadata.vendor
    if vendor is None or vendor.aliyun is None:
        return None
    sent = texts.sent_text(vendor.aliyun.template_code, params)
    if sent is None:
        return None
    return first_difference(sent, body)
