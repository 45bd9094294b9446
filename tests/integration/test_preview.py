"""The preview gallery: every template, its samples, letters as PDF and PNG, all escaped."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dunning.compliance import ApprovalBook, Linter, LintRules, build_gallery
from dunning.project import Project
from dunning.rendering import LetterPrinter, TemplateStore
from tests.helpers import invoke

REPO = Path(__file__).resolve().parents[2]
needs_pdftoppm = pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="needs poppler-utils")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: set[str] = set()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("href", "src"):
            if values.get(name):
                self.links.add(values[name] or "")
        if values.get("id"):
            self.ids.add(values["id"] or "")


def links_of(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def printer() -> LetterPrinter:
    return LetterPrinter()


def linter_for(root: Path) -> Linter:
    project = Project(root)
    return Linter(TemplateStore(project.templates_dir), LintRules.from_project(project))


@needs_pdftoppm
def test_the_gallery_shows_every_template(
    capsys: pytest.CaptureFixture[str], env: Path, tmp_path: Path
) -> None:
    out = tmp_path / "gallery"
    result = invoke(capsys, "templates", "preview", "--out", str(out))
    assert result.code == 0, result.err
    assert f"wrote {out / 'index.html'}" in result.out

    html = (out / "index.html").read_text(encoding="utf-8")
    parsed = links_of(html)
    assert (out / "assets/gallery.css").is_file() and "assets/gallery.css" in parsed.links
    store = TemplateStore(REPO / "templates/messages")
    for ref in store.all():
        assert ref.id.replace("/", "-") in parsed.ids
        assert f'href="#{ref.id.replace("/", "-")}"' in html
    letters = [ref for ref in store.all() if ref.channel == "letter"]
    pdfs = sorted(p.name for p in (out / "letters").glob("*.pdf"))
    pngs = sorted(p.name for p in (out / "letters").glob("*.png"))
    assert len(pdfs) == len(pngs) == 2 * len(letters)  # 2 sample accounts each
    for name in pdfs + pngs:
        assert f"letters/{name}" in parsed.links
    for name in pdfs:
        assert (out / "letters" / name).read_bytes().startswith(b"%PDF-")
    for name in pngs:
        assert (out / "letters" / name).read_bytes().startswith(b"\x89PNG")
    # Every relative link resolves to a file of the gallery.
    for link in parsed.links:
        if not link.startswith("#"):
            assert (out / link).is_file(), link

    # SMS with encoding and parts, push as a lock screen, lint and approval next to each.
    assert re.search(r"DPD 7 &middot; GSM-7 &middot;\s+2 parts &middot;\s+\d+ characters", html)
    assert re.search(r"DPD 7 &middot; UCS-2 &middot;\s+2 parts", html)
    count = {channel: sum(1 for ref in store.all() if ref.channel == channel) for channel in
             ("sms", "push")}  # fmt: skip
    assert html.count('class="phone lock"') == 2 * count["push"]  # 2 samples each
    assert html.count('class="phone sms"') == 2 * count["sms"]
    assert "No findings." in html
    assert "approved</span>" in html


def test_the_gallery_escapes_and_explains(tmp_path: Path, printer: LetterPrinter) -> None:
    root = tmp_path / "program"
    root.mkdir()
    shutil.copy(REPO / "dunning.yaml", root / "dunning.yaml")
    shutil.copytree(REPO / "config", root / "config")
    shutil.copytree(REPO / "templates/messages", root / "templates/messages")
    shutil.copytree(REPO / "templates/typst", root / "templates/typst")
    sms = root / "templates/messages/sms/early/reminder.en-US.txt"
    sms.write_text(
        sms.read_text().replace("Reply STOP to opt out", "<script>alert('x')</script> & Co"),
        encoding="utf-8",
    )
    linter = linter_for(root)
    book = ApprovalBook()
    book.approve(linter.store.get("push/early/reminder.en-US"), reviewer="<b>eve</b>")
    gallery = build_gallery(tmp_path / "out", linter, book, printer=printer, pdftoppm=None)

    html = gallery.index.read_text(encoding="utf-8")
    assert "<script>" not in html and "<b>eve" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co" in html
    assert "by &lt;b&gt;eve&lt;/b&gt;" in html
    assert "sms.opt_out" in html and "never approved" in html
    assert "Letter thumbnails need <code>pdftoppm</code>" in html
    assert not gallery.thumbnails and not list((tmp_path / "out/letters").glob("*.png"))
    letters = [ref for ref in linter.store.all() if ref.channel == "letter"]
    assert len(list((tmp_path / "out/letters").glob("*.pdf"))) == 2 * len(letters)


def test_a_changed_template_shows_its_diff(tmp_path: Path, printer: LetterPrinter) -> None:
    root = tmp_path / "program"
    root.mkdir()
    shutil.copy(REPO / "dunning.yaml", root / "dunning.yaml")
    shutil.copytree(REPO / "config", root / "config")
    shutil.copytree(REPO / "templates/messages", root / "templates/messages")
    shutil.copytree(REPO / "templates/typst", root / "templates/typst")
    linter = linter_for(root)
    book = ApprovalBook()
    for ref in linter.store.all():
        book.approve(ref, reviewer="ana.lee")
    push = root / "templates/messages/push/early/reminder.en-US.txt"
    push.write_text(push.read_text().replace("new message", "new note"), encoding="utf-8")
    html = build_gallery(
        tmp_path / "out", linter_for(root), book, printer=printer, pdftoppm=None
    ).index.read_text(encoding="utf-8")
    assert html.count(">changed</span>") == 2  # the overview and the card
    assert '<span class="add">+{% block body %}You have a new note.' in html
    assert '<span class="del">-{% block body %}You have a new message.' in html


def test_pdfs_prints_each_letter_like_pdf(printer: LetterPrinter) -> None:
    linter = linter_for(REPO)
    messages = [
        sample.message
        for ref in linter.store.all()
        if ref.channel == "letter"
        for sample in linter.samples(ref)[:1]
    ]
    assert printer.pdfs(messages) == [printer.pdf(message) for message in messages]
    assert printer.pdfs([]) == []
