"""Typst letters: hostile values print as written, page sizes follow the policy pack, the same
letter gives the same bytes, letters are PDF/A."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from dunning.rendering import LetterPrinter, TemplateStore, sample_context
from dunning.rendering._typst import escape_typst, typst_to_text
from tests.helpers import repo_renderer

pytestmark = pytest.mark.skipif(shutil.which("pdfinfo") is None, reason="needs poppler-utils")

HOSTILE = "*Garcia* #evil $x$ \\u{41} <l> @ref [a] _b_ `c` // d ~ = - + 1. 'q\""


@pytest.fixture(scope="module")
def store(repo_dir: Path) -> TemplateStore:
    return TemplateStore(repo_dir / "templates" / "messages")


@pytest.fixture(scope="module")
def printer() -> LetterPrinter:
    return LetterPrinter()


def poppler(tool: str, pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "letter.pdf"
    path.write_bytes(pdf)
    args = [tool, "-enc", "UTF-8", str(path), "-"] if tool == "pdftotext" else [tool, str(path)]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def test_escape_typst_leaves_no_markup() -> None:
    escaped = escape_typst(HOSTILE + "\nline")
    assert "\n" not in escaped
    assert typst_to_text(escaped) == " ".join((HOSTILE + " line").split())


@pytest.mark.parametrize(
    "template_id", ["letter/middle/notice.en-US", "letter/middle/notice.zh-CN"]
)
def test_a_hostile_name_prints_as_written(
    store: TemplateStore, printer: LetterPrinter, tmp_path: Path, template_id: str
) -> None:
    ref = store.get(template_id)
    context = sample_context(ref.locale, ref.tier)
    context = dataclasses.replace(
        context, customer=dataclasses.replace(context.customer, name=HOSTILE)
    )
    message = repo_renderer(store).render(ref, context)
    text = poppler("pdftotext", printer.pdf(message), tmp_path)
    # pdftotext may break a long line: compare without whitespace.
    assert "".join(HOSTILE.split()) in "".join(text.split())
    assert "".join(HOSTILE.split()) in "".join(message.text.split())


@pytest.mark.parametrize(
    ("template_id", "size"),
    [
        ("letter/late/final_demand.en-US", "612 x 792 pts (letter)"),
        ("letter/late/final_demand.zh-CN", "595.276 x 841.89 pts (A4)"),
    ],
)
def test_page_size_comes_from_the_policy_pack(
    store: TemplateStore, printer: LetterPrinter, tmp_path: Path, template_id: str, size: str
) -> None:
    ref = store.get(template_id)
    message = repo_renderer(store).render(ref, sample_context(ref.locale, ref.tier))
    info = poppler("pdfinfo", printer.pdf(message), tmp_path)
    assert f"Page size:       {size}" in info
    text = poppler("pdftotext", printer.pdf(message), tmp_path)
    assert ("邓宁" in text) == ref.locale.startswith("zh")  # Chinese text has its font


def test_same_letter_same_bytes_and_pdf_a(store: TemplateStore, tmp_path: Path) -> None:
    ref = store.get("letter/middle/notice.zh-CN")
    message = repo_renderer(store).render(ref, sample_context(ref.locale, ref.tier))
    first, second = LetterPrinter().pdf(message), LetterPrinter().pdf(message)
    assert first == second
    assert LetterPrinter().pdf(message) == first
    assert b"pdfaid:part" in first or b"pdfaid" in first
