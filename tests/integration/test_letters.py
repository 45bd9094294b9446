"""Letter PDFs: both locales print, Chinese text survives, the window shows only the address,
and the same letter always gives the same bytes."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dunning.errors import TemplateError
from dunning.rendering import (
    LetterPrinter,
    RenderedMessage,
    Renderer,
    TemplateStore,
    sample_context,
)

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")

MM = 72 / 25.4  # PDF points per millimetre
WINDOW = (20.0, 45.0, 90.0, 45.0)  # left, top, width, height in mm: DL / C5-6 left window
SLACK = 4.0  # the sheet moves a few millimetres inside the envelope


@pytest.fixture(scope="module")
def store(repo_dir: Path) -> TemplateStore:
    return TemplateStore(repo_dir / "templates" / "messages")


@pytest.fixture(scope="module")
def printer() -> LetterPrinter:
    return LetterPrinter()


def render(store: TemplateStore, template_id: str) -> RenderedMessage:
    ref = store.get(template_id)
    return Renderer(store).render(ref, sample_context(ref.locale, ref.tier))


def pdftotext(pdf: bytes, tmp_path: Path, *args: str) -> str:
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", *args, str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


LETTERS = [
    "letter/middle/notice.en-US",
    "letter/middle/notice.zh-CN",
    "letter/late/final_demand.en-US",
    "letter/late/final_demand.zh-CN",
]


@pytest.mark.parametrize("template_id", LETTERS)
def test_letter_prints_with_reference_and_language(
    template_id: str, store: TemplateStore, printer: LetterPrinter, tmp_path: Path
) -> None:
    ref = store.get(template_id)
    context = sample_context(ref.locale, ref.tier)
    pdf = printer.pdf(Renderer(store).render(ref, context))
    assert pdf.startswith(b"%PDF-1.7")
    text = pdftotext(pdf, tmp_path)
    assert context.reference in text
    assert context.customer.name in text
    if ref.locale == "zh-CN":
        assert ("催收函" if ref.tier == "middle" else "最终催告函") in re.sub(r"\s", "", text)
        assert "欧阳晓东" in text and "¥" in text
        assert len(re.findall(r"[\u4e00-\u9fff]", text)) > 200
    else:
        assert "attempting to collect a debt" in text
        assert "$" in text


@pytest.mark.parametrize("template_id", LETTERS)
def test_the_window_shows_only_addresses(
    template_id: str, store: TemplateStore, printer: LetterPrinter, tmp_path: Path
) -> None:
    ref = store.get(template_id)
    context = sample_context(ref.locale, ref.tier)
    pdf = printer.pdf(Renderer(store).render(ref, context))
    left, top, width, height = WINDOW
    box = {"-x": left - SLACK, "-y": top - SLACK, "-W": width + 2 * SLACK, "-H": height + 2 * SLACK}
    crop = [part for flag, mm in box.items() for part in (flag, str(round(mm * MM)))]
    window = pdftotext(pdf, tmp_path, "-f", "1", "-l", "1", "-r", "72", *crop)
    seen = [line.strip() for line in window.splitlines() if line.strip()]
    allowed = [
        *context.address.lines,
        context.customer.name,
        f"{context.customer.name} 收",
    ]
    return_address = seen.pop(0)
    assert context.lender.name in return_address
    assert all(line in return_address for line in context.lender.return_address)
    assert seen and all(line in allowed for line in seen), seen
    assert context.customer.name in " ".join(seen)


def test_same_letter_same_bytes(
    store: TemplateStore, printer: LetterPrinter, tmp_path: Path
) -> None:
    final = render(store, "letter/late/final_demand.zh-CN")
    other = render(store, "letter/middle/notice.en-US")
    first = printer.pdf(final)
    printer.pdf(other)  # another letter in between must not change the next one
    assert printer.pdf(final) == first
    assert LetterPrinter().pdf(final) == first  # nor a new printer
    assert printer.pdf(dataclasses.replace(final)) == first
    assert b"/CreationDate" not in first and b"/ModDate" not in first
    changed = dataclasses.replace(final, html=(final.html or "").replace("欧阳晓东", "欧阳晓西"))
    assert printer.pdf(changed) != first


def test_identifier_is_derived_from_the_html(store: TemplateStore, printer: LetterPrinter) -> None:
    one = printer.pdf(render(store, "letter/middle/notice.en-US"))
    two = printer.pdf(render(store, "letter/late/final_demand.en-US"))
    ids = [re.search(rb"/ID \[\((\w+)\)", pdf) for pdf in (one, two)]
    assert all(ids)
    assert ids[0].group(1) != ids[1].group(1)  # type: ignore[union-attr]


def test_only_letters_print(store: TemplateStore, printer: LetterPrinter) -> None:
    with pytest.raises(TemplateError, match="only letters"):
        printer.pdf(render(store, "sms/early/reminder.en-US"))
