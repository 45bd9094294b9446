"""Letters in Typst: escaping values into Typst markup, the page format, the plain text.

A letter template (`letter/<tier>/<name>.<locale>.typ`) is Jinja rendering Typst markup. Every
`{{ ... }}` output is escaped by `escape_typst` (the environment's finalize), so a customer
called `*Garcia* #evil` prints as written and can never become markup or code. Values go into
markup only (content blocks `[...]`), never into Typst string literals or code.

The renderer makes each letter one self-contained Typst source, the record of what is printed:
a generated preamble (the page format from the policy pack, the letter's date), the shared
layout modules of the program directory (`templates/typst/*.typ`, spliced in where a template
says `#import "letter.typ": *`, so the approval hash covers them as it covered the CSS), then
the template's markup. Nothing on disk or the network is read when it is printed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

TYPST_MARKER = "// dunning-typst 1"
"""The first line of every rendered Typst letter (printing tells Typst sources from HTML)."""

_PUNCTUATION = frozenset("\\*_#$<>@[]`/~=-+.,'\":;!?(){}%&|^")
_SPACES = re.compile(r"[\r\n\t\v\f\u2028\u2029]+")


def escape_typst(text: str) -> str:
    """`text` as Typst markup that prints it literally.

    Every ASCII punctuation character gets a backslash (Typst prints `\\x` as `x` for any of
    them): emphasis (`*`, `_`), code (`#`), math (`$`), labels and references (`<`, `@`),
    content blocks (`[`, `]`), raw text (backquote), comments (`/`), non-breaking space (`~`),
    headings, lists and smart quotes at the start of a line or anywhere (`=`, `-`, `+`, `.`,
    quotes). Line breaks in a value become spaces: a value cannot start a line of markup.
    """
    text = _SPACES.sub(" ", text)
    if not any(char in _PUNCTUATION for char in text):
        return text
    return "".join(f"\\{char}" if char in _PUNCTUATION else char for char in text)


_LENGTH = re.compile(r"^(?P<number>\d+(\.\d+)?)(?P<unit>mm|cm|in|pt)$")


@dataclass(frozen=True)
class Box:
    """A rectangle on page one, from the sheet's top-left corner (Typst lengths: `20mm`)."""

    left: str
    top: str
    width: str
    height: str

    def typst(self) -> str:
        for value in (self.left, self.top, self.width, self.height):
            if _LENGTH.match(value) is None:  # checked by the policy pack; kept as data here
                raise ValueError(f"not a length: {value!r}")
        return f"(left: {self.left}, top: {self.top}, width: {self.width}, height: {self.height})"


@dataclass(frozen=True)
class PageFormat:
    """How a jurisdiction's letters are laid out (the policy pack's `letter:` setting)."""

    paper: str
    """Typst paper name: `us-letter` (8.5 x 11 in) or `a4`."""
    envelope: str
    """What the letter is folded into (documentation, and the record's preamble)."""
    recipient: Box
    """The envelope's address window: only the recipient shows there."""
    return_address: Box
    """The return address window (or the line above the address in a single window)."""

    def preamble(self, as_of: date) -> str:
        """The generated head of a rendered letter: its page format and its date."""
        if self.paper not in PAPERS:
            raise ValueError(f"unknown paper {self.paper!r}")
        return (
            f"{TYPST_MARKER}\n"
            f'#let page-format = (paper: "{self.paper}", '
            f"recipient: {self.recipient.typst()}, "
            f"return-address: {self.return_address.typst()})\n"
            f"#let letter-date = datetime(year: {as_of.year}, month: {as_of.month}, "
            f"day: {as_of.day})\n"
        )


PAPERS = {"us-letter": (215.9, 279.4), "a4": (210.0, 297.0)}
"""The papers a letter may use, with their size in millimetres (width, height)."""


def to_mm(length: str) -> float:
    """A Typst length of a policy pack (`0.75in`, `20mm`) in millimetres."""
    match = _LENGTH.match(length)
    if match is None:
        raise ValueError(f"{length!r} is not a length such as 20mm or 0.75in")
    factor = {"mm": 1.0, "cm": 10.0, "in": 25.4, "pt": 25.4 / 72}[match.group("unit")]
    return float(match.group("number")) * factor


_IMPORT = re.compile(r'^#import "(?P<module>[a-z][a-z0-9_-]*\.typ)": \*[ \t]*$', re.MULTILINE)


def imported_modules(source: str) -> list[str]:
    """The layout modules a template imports (`#import "letter.typ": *`), in order."""
    return [match.group("module") for match in _IMPORT.finditer(source)]


def splice_modules(output: str, modules: dict[str, str]) -> str:
    """The rendered markup with each `#import "<module>.typ": *` replaced by the module."""

    def module(match: re.Match[str]) -> str:
        return modules[match.group("module")].rstrip("\n")

    return _IMPORT.sub(module, output)


# Plain text of a letter's markup, for lint and the outbox body. Templates use a small part of
# Typst: markup with headings, lists, strong/emphasis, escapes, and calls of the layout's
# functions whose content blocks hold the text (`#amounts[...][...]`). Code outside content
# blocks (arguments, strings, numbers) is not text. The layout's two-column tables give one
# line a row, its cells joined by a tab (`Total balance<TAB>$14,200.00`), as the HTML letters'
# tables did.

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_TABLES = frozenset({"amounts", "facts"})
"""Layout functions (templates/typst/letter.typ) whose positional content blocks are the cells
of a two-column table."""
_SOFT_BREAK = "\x00"
"""A line break inside a paragraph: a space, except next to Chinese (wide) characters."""


def typst_to_text(markup: str) -> str:
    """The visible text of a letter's markup (the template's part, without the layout)."""
    out: list[str] = []
    _markup(markup, 0, out, closing=None)
    text = _join_soft_breaks("".join(out))
    lines = [
        "\t".join(" ".join(cell.split()) for cell in line.split("\t")) for line in text.split("\n")
    ]
    return "\n".join(line.strip("\t") for line in lines if line.strip())


def _join_soft_breaks(text: str) -> str:
    parts = text.split(_SOFT_BREAK)
    joined = parts[0]
    for part in parts[1:]:
        before, after = joined.rstrip(" "), part.lstrip(" ")
        if before and after and (_is_wide(before[-1]) or _is_wide(after[0])):
            joined = before + after
        else:
            joined = f"{joined} {part}"
    return joined


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in {"W", "F"}


def _markup(src: str, i: int, out: list[str], *, closing: str | None) -> int:
    """Append the text of markup from `i` to `closing` (or the end); return the index after."""
    start_of_line = True
    heading = False
    while i < len(src):
        char = src[i]
        if closing is not None and char == closing:
            out.append("\n")
            return i + 1
        if char == "\\" and i + 1 < len(src):
            nxt = src[i + 1]
            out.append("\n" if nxt.isspace() else nxt)
            i += 2
        elif src.startswith("//", i):
            i = _line_end(src, i)
        elif src.startswith("/*", i):
            end = src.find("*/", i + 2)
            i = len(src) if end < 0 else end + 2
        elif char == "#":
            i = _code(src, i + 1, out)
        elif char == "[":
            i = _markup(src, i + 1, out, closing="]")
        elif char in "*_":
            i += 1
        elif char == "\n":
            # One line break is a space in Typst; a blank line, a block or the end of a heading
            # ends a paragraph.
            j = i + 1
            while j < len(src) and src[j] in " \t":
                j += 1
            ends = heading or j >= len(src) or src[j] in "\n=-+#{"
            out.append("\n" if ends else _SOFT_BREAK)
            heading = False
            i += 1
        elif char == "~":
            out.append(" ")
            i += 1
        elif start_of_line and char in "=-+" and _marker_end(src, i) is not None:
            heading = char == "="
            i = _marker_end(src, i) or i  # a heading or list marker: not text
        else:
            out.append(char)
            i += 1
        if char == "\n":
            start_of_line = True
        elif not char.isspace():
            start_of_line = False
    return i


def _marker_end(src: str, i: int) -> int | None:
    """The end of a heading (`== `) or list (`- `, `+ `) marker at `i`; None if there is none."""
    j = i + 1
    if src[i] == "=":
        while j < len(src) and src[j] == "=":
            j += 1
    return j + 1 if j < len(src) and src[j] == " " else None


def _line_end(src: str, i: int) -> int:
    end = src.find("\n", i)
    return len(src) if end < 0 else end


def _code(src: str, i: int, out: list[str]) -> int:
    """After `#`: a keyword line (`#set`, `#show`, `#let`, `#import`) is skipped whole; a call
    `name(args)[content]...` gives the text of its content blocks and its arguments'."""
    match = _IDENT.match(src, i)
    if match is None:
        return i
    name = match.group()
    if name in {"set", "show", "let", "import", "include"}:
        # Code to the end of its line or of its parentheses; content blocks in it are text.
        return _arguments(src, match.end(), out, until_line_end=True)
    i = match.end()
    cells: list[str] | None = [] if name in _TABLES else None
    while i < len(src) and src[i] in "([":
        if src[i] == "(":
            i = _arguments(src, i + 1, out, cells=cells)
        else:
            i = _block(src, i + 1, out, cells)
    if cells:
        out.append("\n")
        for row in range(0, len(cells), 2):
            out.append("\t".join(cells[row : row + 2]) + "\n")
    return i


def _block(src: str, i: int, out: list[str], cells: list[str] | None) -> int:
    """A content block from after its `[`: its text, or a table cell when `cells` collects."""
    if cells is None:
        return _markup(src, i, out, closing="]")
    cell: list[str] = []
    i = _markup(src, i, cell, closing="]")
    cells.append(" ".join(_join_soft_breaks("".join(cell)).split()))
    return i


def _arguments(
    src: str,
    i: int,
    out: list[str],
    *,
    until_line_end: bool = False,
    cells: list[str] | None = None,
) -> int:
    """Inside `( ... )` (or a code line): content blocks are text, strings and the rest are
    code. With `cells`, positional content blocks are table cells (named ones, such as a
    caption, stay text)."""
    depth = 0 if until_line_end else 1
    named = False
    while i < len(src) and (depth or until_line_end):
        char = src[i]
        if until_line_end and depth == 0 and char == "\n":
            return i
        if char == '"':
            i += 1
            while i < len(src) and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            i += 1
            continue
        if char == "[":
            i = _block(src, i + 1, out, None if named or depth != 1 else cells)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 1:
            named = False
        elif char == ":" and depth == 1:
            named = True
        i += 1
    return i
