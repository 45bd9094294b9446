"""Plain-text shaping: SMS and push as one paragraph, and a letter's text from its HTML."""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

_WIDE = frozenset({"W", "F"})


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in _WIDE


def one_paragraph(text: str) -> str:
    """Join a template's lines into one paragraph.

    Lines are stripped and joined with a space, except next to Chinese (wide) characters, where
    a space would be a visible, billed character that Chinese text does not use.
    """
    if "\n" not in text:
        return text.strip()
    joined = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if joined and not (_is_wide(joined[-1]) or _is_wide(line[0])):
            joined += " "
        joined += line
    return joined


_PARAGRAPHS = frozenset(
    {
        "address", "article", "aside", "blockquote", "dl", "footer", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "main", "ol", "p", "section", "table", "ul",
    }
)  # fmt: skip
"""Blocks followed by a blank line."""
_LINES = frozenset(
    {"body", "br", "caption", "dd", "div", "dt", "li", "tbody", "tfoot", "thead", "tr"}
)
"""Blocks that only start a new line."""
_CELLS = frozenset({"td", "th"})
_HIDDEN = frozenset({"head", "script", "style", "template", "title"})
_SPACES = re.compile(r"[ \t\r\n\f]+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._hidden = 0
        self._cells = 0

    def end_line(self) -> None:
        line = re.sub(r" *\t *", "\t", "".join(self._line)).strip()
        self._line = []
        self._cells = 0
        if line.strip():
            self.lines.append(line)

    def end_paragraph(self) -> None:
        self.end_line()
        if self.lines and self.lines[-1]:
            self.lines.append("")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
        elif tag in _PARAGRAPHS or tag in _LINES:
            self.end_line()
        elif tag in _CELLS:
            if self._cells:
                self._line.append("\t")
            self._cells += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _PARAGRAPHS:
            self.end_paragraph()
        elif tag in _LINES:
            self.end_line()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._line.append(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """The visible text of an HTML letter: a line per block, a blank line after paragraphs,
    headings and tables, table cells separated by tabs."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    parser.end_line()
    return "\n".join(parser.lines).strip()
