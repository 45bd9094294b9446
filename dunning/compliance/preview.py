"""The preview gallery: every template rendered with sample accounts, as static HTML files.

    gallery = build_gallery(out_dir, linter, book)   # out_dir/index.html, assets/, letters/

Each template is shown with the sample accounts lint uses (its tier's typical sending day and
its last day): SMS as a message bubble with encoding and parts, push as a lock-screen
notification, letters as PDF files with a PNG thumbnail of the first page (pdftoppm, from
poppler-utils; without it the page says so and links the PDFs only). Next to each template: its
lint findings and its approval status, with the diff when it changed since approval.

The gallery is plain files with relative links, so it opens from the file system; everything
shown is escaped (Jinja autoescape).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from dunning.compliance._gallery import GALLERY_CSS, GALLERY_HTML
from dunning.compliance.approvals import ApprovalBook
from dunning.compliance.lint import Finding, Linter, Sample, push_payload
from dunning.compliance.sms import sms_length
from dunning.errors import TemplateError
from dunning.rendering import LetterPrinter, TemplateRef
from dunning.types import Channel

CHANNEL_TITLES = {Channel.SMS: "SMS", Channel.PUSH: "Push notifications", Channel.LETTER: "Letters"}
THUMBNAIL_DPI = 60


@dataclass
class Gallery:
    index: Path
    files: list[Path] = field(default_factory=list)
    """Every file written, index.html included."""
    thumbnails: bool = False
    """Whether letter thumbnails were made (pdftoppm found)."""


def build_gallery(
    out_dir: Path,
    linter: Linter,
    book: ApprovalBook,
    *,
    printer: LetterPrinter | None = None,
    pdftoppm: str | None = "pdftoppm",
    title: str = "Dunning message templates",
) -> Gallery:
    """Write the gallery of every template in `linter.store` to `out_dir`.

    `pdftoppm` is the thumbnailer's command (looked up on PATH); None makes no thumbnails.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "assets").mkdir(exist_ok=True)
    thumbnailer = shutil.which(pdftoppm) if pdftoppm else None
    gallery = Gallery(index=out_dir / "index.html", thumbnails=thumbnailer is not None)
    refs = linter.store.all()
    if printer is None and any(ref.channel is Channel.LETTER for ref in refs):
        printer = LetterPrinter()
    cards = [_card(ref, linter, book, out_dir, gallery, printer, thumbnailer) for ref in refs]
    sections = [
        {
            "id": channel.value,
            "title": title_,
            "cards": [c for c in cards if c["channel"] == channel],
        }
        for channel, title_ in CHANNEL_TITLES.items()
    ]
    css = out_dir / "assets" / "gallery.css"
    css.write_text(GALLERY_CSS, encoding="utf-8")
    env = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    html = env.from_string(GALLERY_HTML).render(
        title=title,
        sections=[section for section in sections if section["cards"]],
        cards=cards,
        thumbnails=gallery.thumbnails,
        totals={
            "templates": len(cards),
            "errors": sum(card["errors"] for card in cards),
            "warnings": sum(card["warnings"] for card in cards),
            "approved": sum(1 for card in cards if card["status"].state == "approved"),
        },
    )
    gallery.index.write_text(html, encoding="utf-8")
    gallery.files = [gallery.index, css, *gallery.files]
    return gallery


def _card(
    ref: TemplateRef,
    linter: Linter,
    book: ApprovalBook,
    out_dir: Path,
    gallery: Gallery,
    printer: LetterPrinter | None,
    thumbnailer: str | None,
) -> dict[str, Any]:
    findings: list[Finding] = linter.lint(ref)
    card: dict[str, Any] = {
        "ref": ref,
        "anchor": ref.id.replace("/", "-"),
        "channel": ref.channel,
        "meta": ref.metadata,
        "status": book.status(ref),
        "findings": findings,
        "errors": sum(1 for finding in findings if finding.severity == "error"),
        "warnings": sum(1 for finding in findings if finding.severity == "warning"),
        "samples": [],
        "render_error": None,
    }
    try:
        samples = linter.samples(ref)
    except TemplateError as exc:
        card["render_error"] = str(exc)
        return card
    if ref.channel is Channel.LETTER:
        card["samples"] = _letters(
            ref, samples, printer or LetterPrinter(), out_dir, gallery, thumbnailer
        )
    else:
        card["samples"] = [_text_sample(ref, sample) for sample in samples]
    return card


def _text_sample(ref: TemplateRef, sample: Sample) -> dict[str, Any]:
    message = sample.message
    item: dict[str, Any] = {
        "dpd": sample.dpd,
        "title": message.subject,
        "text": message.text,
        "lender": sample.context.lender.name,
    }
    if ref.channel is Channel.SMS:
        item["length"] = sms_length(message.text)
    else:
        item["payload_bytes"] = len(push_payload(message))
    return item


def _letters(
    ref: TemplateRef,
    samples: list[Sample],
    printer: LetterPrinter,
    out_dir: Path,
    gallery: Gallery,
    thumbnailer: str | None,
) -> list[dict[str, Any]]:
    letters_dir = out_dir / "letters"
    letters_dir.mkdir(exist_ok=True)
    items = []
    pdfs = printer.pdfs([sample.message for sample in samples])
    for sample, pdf in zip(samples, pdfs, strict=True):
        stem = f"{ref.id.replace('/', '-')}.dpd{sample.dpd}"
        pdf_path = letters_dir / f"{stem}.pdf"
        pdf_path.write_bytes(pdf)
        gallery.files.append(pdf_path)
        item: dict[str, Any] = {
            "dpd": sample.dpd,
            "pdf": f"letters/{pdf_path.name}",
            "pdf_kb": max(1, round(len(pdf) / 1024)),
            "png": None,
            "thumbnail_error": None,
        }
        if thumbnailer is not None:
            png_path = letters_dir / f"{stem}.png"
            try:
                subprocess.run(
                    [
                        thumbnailer,
                        "-png",
                        "-r",
                        str(THUMBNAIL_DPI),
                        "-f",
                        "1",
                        "-l",
                        "1",
                        "-singlefile",
                        str(pdf_path),
                        str(letters_dir / stem),
                    ],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                item["thumbnail_error"] = f"pdftoppm failed: {type(exc).__name__}"
            else:
                item["png"] = f"letters/{png_path.name}"
                gallery.files.append(png_path)
        items.append(item)
    return items
