"""Letter PDFs: both locales print, Chinese text survives, the envelope's windows (the policy
pack's, measured on the Typst PDF with pdftotext -bbox) show only the addresses, and the same
letter always gives the same bytes."""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dunning.config.compliance import letter_formats
from dunning.config.packs import load_packs
from dunning.errors import TemplateError
from dunning.rendering import (
    LetterPrinter,
    RenderedMessage,
    TemplateStore,
    sample_context,
)
from dunning.rendering._typst import Box, PageFormat, to_mm
from tests.helpers import repo_renderer

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")

MM = 72 / 25.4  # PDF points per millimetre
SLACK = 3.0  # millimetres: the sheet moves a little inside the envelope


@pytest.fixture(scope="module")
def store(repo_dir: Path) -> TemplateStore:
    return TemplateStore(repo_dir / "templates" / "messages")


@pytest.fixture(scope="module")
def printer() -> LetterPrinter:
    return LetterPrinter()


@pytest.fixture(scope="module")
def formats(repo_dir: Path) -> dict[str, PageFormat]:
    return letter_formats(load_packs(repo_dir / "config", repo_dir))


def render(store: TemplateStore, template_id: str) -> RenderedMessage:
    ref = store.get(template_id)
    return repo_renderer(store).render(ref, sample_context(ref.locale, ref.tier))


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
    pdf = printer.pdf(repo_renderer(store).render(ref, context))
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


Word = tuple[str, float, float, float, float]
"""A word on page one: text, then left, top, right, bottom in millimetres from the top-left."""
_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>'
)


def page_one_words(pdf: bytes, tmp_path: Path) -> list[Word]:
    xhtml = pdftotext(pdf, tmp_path, "-f", "1", "-l", "1", "-bbox")
    return [
        (html.unescape(text), *(float(n) / MM for n in box))  # type: ignore[misc]
        for *box, text in _WORD.findall(xhtml)
    ]


def inside(word: Word, window: Box, slack: float = 0.0) -> bool:
    """The word lies wholly inside the window (grown by `slack` on every side)."""
    _, left, top, right, bottom = word
    return (
        left >= to_mm(window.left) - slack
        and top >= to_mm(window.top) - slack
        and right <= to_mm(window.left) + to_mm(window.width) + slack
        and bottom <= to_mm(window.top) + to_mm(window.height) + slack
    )


def overlaps(word: Word, window: Box, slack: float) -> bool:
    """Some of the word shows through the window (grown by `slack`: the sheet moves)."""
    _, left, top, right, bottom = word
    return (
        right > to_mm(window.left) - slack
        and left < to_mm(window.left) + to_mm(window.width) + slack
        and bottom > to_mm(window.top) - slack
        and top < to_mm(window.top) + to_mm(window.height) + slack
    )


@pytest.mark.parametrize("template_id", LETTERS)
def test_the_windows_show_only_addresses(
    template_id: str,
    store: TemplateStore,
    printer: LetterPrinter,
    formats: dict[str, PageFormat],
    tmp_path: Path,
) -> None:
    ref = store.get(template_id)
    page = formats[ref.metadata.jurisdiction]
    context = sample_context(ref.locale, ref.tier)
    words = page_one_words(printer.pdf(repo_renderer(store).render(ref, context)), tmp_path)
    assert words
    windows = {
        "recipient": (
            page.recipient,
            " ".join([context.customer.name, "收", *context.address.lines]),
            [context.customer.name, *context.address.lines],
        ),
        "return address": (
            page.return_address,
            # As the templates write it: "Lender, PO Box 1000, ..." or "寄件人：Lender PO Box ..."
            "寄件人：" + ", ".join([context.lender.name, *context.lender.return_address]),
            [context.lender.name, *context.lender.return_address],
        ),
    }
    for name, (window, allowed, required) in windows.items():
        seen = [word for word in words if overlaps(word, window, SLACK)]
        # Nothing else shows through the window, even with the sheet moved a little ...
        strangers = [word[0] for word in seen if word[0] not in "".join(allowed.split())]
        assert not strangers, (name, strangers)
        # ... and the whole address is in it, none of it clipped.
        shown = "".join(word[0] for word in words if inside(word, window))
        for line in required:
            assert "".join(line.split()) in shown, (name, line)


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
    # Typst's clock is fixed: the document dates are the letter's date, never the print time.
    dates = set(re.findall(rb"/(?:CreationDate|ModDate) ?\(D:(\d{8})", first))
    assert dates == {b"20250616"}, dates
    changed = dataclasses.replace(final, typst=(final.typst or "").replace("欧阳晓东", "欧阳晓西"))
    assert printer.pdf(changed) != first


def test_identifier_is_derived_from_the_letter(
    store: TemplateStore, printer: LetterPrinter
) -> None:
    one = printer.pdf(render(store, "letter/middle/notice.en-US"))
    two = printer.pdf(render(store, "letter/late/final_demand.en-US"))
    ids = [re.search(rb"/ID ?\[\(([^)]+)\)", pdf) for pdf in (one, two)]
    assert all(ids)
    assert ids[0].group(1) != ids[1].group(1)  # type: ignore[union-attr]


def test_only_letters_print(store: TemplateStore, printer: LetterPrinter) -> None:
    with pytest.raises(TemplateError, match="only letters"):
        printer.pdf(render(store, "sms/early/reminder.en-US"))
