"""PDFs: letters with Typst, case packet documents (HTML) with WeasyPrint; both reproducible.

Letters (RenderedMessage.typst): one typst.Compiler per printer (per printer process), reused
for every letter: its fonts are loaded once. The fonts are given explicitly (FONT_DIRS: DejaVu
Sans, WenQuanYi Micro Hei for Chinese), system fonts ignored, so a letter does not change with
what else is installed. The root is an empty directory and there is no package cache: a letter
reads no file and downloads nothing (its source is self-contained, see `_typst`). The document
date is the letter's date (its preamble) and the timestamp is fixed, so the same source always
gives the same bytes; letters are PDF/A-2b, kept as evidence.

Case packet documents (RenderedMessage.html) and preview thumbnails stay on WeasyPrint for now.
One printer keeps a FontConfiguration and each distinct stylesheet parsed once (a fresh one of
each costs about 250 ms a document). The rendered HTML carries its CSS inline (it is the
record); the printer takes that <style> element out and hands WeasyPrint the already-parsed
sheet instead, and streams are deflated at zlib level 6 instead of pydyf's 9: a third of the
time for about 1 % more bytes.

Reproducible: the same RenderedMessage always gives the same bytes, because a case packet must
hold the final demand letter exactly as sent. WeasyPrint writes no dates unless the HTML asks
for them (templates must not add `dcterms.created`/`modified` meta tags), font subset names come
from a stable hash, and the PDF file identifier, random in many tools, is derived here from the
HTML. Resources are limited to data: URLs, so nothing on disk or the network changes a letter.
"""

from __future__ import annotations

import hashlib
import importlib
import re
import tempfile
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dunning.errors import TemplateError
from dunning.rendering._renderer import CSS_MARKER, RenderedMessage

_STYLE = re.compile(rf"<style {CSS_MARKER}>\n(?P<css>.*?)\n</style>\n", re.DOTALL)


def split_css(html: str) -> tuple[str, str]:
    """(the HTML without the renderer's <style> element, that element's CSS)."""
    match = _STYLE.search(html)
    if match is None:
        return html, ""
    return html[: match.start()] + html[match.end() :], match.group("css")


DEFLATE_LEVEL = 6


class _Deflate:
    """zlib as pydyf sees it: compressobj() at DEFLATE_LEVEL whatever level pydyf asks for."""

    def __getattr__(self, name: str) -> Any:
        return getattr(zlib, name)

    @staticmethod
    def compressobj(level: int = -1, *args: Any, **kwargs: Any) -> Any:
        return zlib.compressobj(DEFLATE_LEVEL, *args, **kwargs)


def _deflate_faster() -> None:
    # pydyf (WeasyPrint's PDF writer) deflates every stream at level 9, which is most of the
    # PDF writing time for Chinese letters (the CJK font subset is large). The output is the
    # same PDF, a little bigger; left alone if pydyf ever stops using the zlib module this way.
    pydyf = importlib.import_module("pydyf")
    if getattr(pydyf, "zlib", None) is zlib:
        pydyf.zlib = _Deflate()  # type: ignore[attr-defined]


FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),  # fonts-dejavu-core: DejaVu Sans
    Path("/usr/share/fonts/truetype/wqy"),  # fonts-wqy-microhei: WenQuanYi Micro Hei (Chinese)
)
"""The fonts letters are laid out with (scripts/install installs both Debian packages)."""
PDF_STANDARD = "a-2b"
"""PDF/A-2b: letters are kept as evidence (records for at least 3 years)."""
TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)
"""Typst's clock for a letter: fixed, so nothing in a PDF depends on when it was printed (the
document date is the letter's own, set by its preamble)."""


class LetterPrinter:
    """Prints rendered letters (Typst) and case packet documents (HTML) to PDF. Not
    thread-safe: use one printer per thread."""

    def __init__(self) -> None:
        # Loaded on first use: a printer process prints letters only, and most commands never
        # print anything.
        self._compiler: Any = None
        self._root: tempfile.TemporaryDirectory[str] | None = None
        self._font_config: Any = None
        self._url_fetcher: Any = None
        self._stylesheets: dict[str, Any] = {}

    def pdf(self, rendered: RenderedMessage) -> bytes:
        if rendered.typst is not None:
            return self._typst_pdf(rendered.typst)
        if rendered.html is None:
            raise TemplateError("only letters and documents print to PDF: this message has none")
        return self._html_pdf(rendered.html)

    def _typst_pdf(self, source: str) -> bytes:
        import typst  # the compiler loads only in the processes that print letters

        if self._compiler is None:
            self._root = tempfile.TemporaryDirectory(prefix="dunning-typst-")
            empty = self._root.name
            self._compiler = typst.Compiler(
                root=empty,
                font_paths=[str(path) for path in FONT_DIRS if path.is_dir()],
                ignore_system_fonts=True,
                package_path=empty,
                package_cache_path=empty,
            )
        try:
            pdf = self._compiler.compile(
                input=source.encode("utf-8"),
                format="pdf",
                pdf_standards=PDF_STANDARD,
                timestamp=TIMESTAMP,
            )
        except Exception as exc:  # Typst's diagnostics may quote the letter (PII)
            raise TemplateError(f"letter PDF failed: {type(exc).__name__}") from None
        assert isinstance(pdf, bytes)
        return pdf

    def _html_pdf(self, html_document: str) -> bytes:
        # WeasyPrint (Pango, fonts) loads only in the processes that print documents.
        from weasyprint import HTML
        from weasyprint.text.fonts import FontConfiguration
        from weasyprint.urls import URLFetcher

        if self._font_config is None:
            _deflate_faster()
            self._font_config = FontConfiguration()
            self._url_fetcher = URLFetcher(allowed_protocols={"data"})
        rendered_html = html_document
        html, css = split_css(rendered_html)
        identifier = hashlib.sha256(rendered_html.encode("utf-8")).hexdigest()[:32]
        try:
            document = HTML(string=html, url_fetcher=self._url_fetcher)
            pdf = document.write_pdf(
                stylesheets=[self._stylesheet(css)] if css else None,
                font_config=self._font_config,
                pdf_identifier=identifier.encode("ascii"),
                pdf_version="1.7",
            )
        except Exception as exc:  # WeasyPrint's messages may quote the letter (PII)
            raise TemplateError(f"letter PDF failed: {type(exc).__name__}") from None
        assert isinstance(pdf, bytes)
        return pdf

    def pdfs(self, rendered: Sequence[RenderedMessage]) -> list[bytes]:
        """Several letters, in order. What letters can share (fonts, parsed stylesheets) the
        printer already keeps between calls, so this is a loop: the same bytes as pdf() each."""
        return [self.pdf(message) for message in rendered]

    def _stylesheet(self, css: str) -> Any:
        # WeasyPrint (Pango, fonts) loads only in the processes that print letters.
        from weasyprint import CSS

        key = hashlib.sha256(css.encode("utf-8")).hexdigest()
        sheet = self._stylesheets.get(key)
        if sheet is None:
            sheet = CSS(string=css, font_config=self._font_config, url_fetcher=self._url_fetcher)
            self._stylesheets[key] = sheet
        return sheet
