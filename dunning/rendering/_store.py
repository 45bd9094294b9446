"""The template store: every template under templates/messages/, read once, checked, and hashed.

Layout: `<channel>/<tier>/<name>.<locale>.<ext>`, ext `.txt` for sms and push, `.typ` for
letters (Jinja rendering Typst markup, `_typst`). A letter's layout lives in the shared Typst
modules of `templates/typst/` that it imports (`#import "letter.typ": *`). A letter's content
hash covers the modules it imports, so a layout edit is a template change (it needs
re-approval like any other).

Templates cannot include or extend other templates (the environment has no loader): what a
content hash covers is all that renders.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from dunning.errors import TemplateError
from dunning.rendering._metadata import TemplateMetadata, parse_front_matter
from dunning.rendering._typst import imported_modules
from dunning.types import Channel

EXTENSIONS: dict[Channel, str] = {
    Channel.SMS: ".txt",
    Channel.PUSH: ".txt",
    Channel.LETTER: ".typ",
}
LAYOUT_DIR = "typst"
"""templates/typst/: the Typst modules letters import (next to templates/messages/)."""
_FILE_NAME = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9_]*)\.(?P<locale>[a-z]{2,3}(-[A-Z][a-z]{3})?-([A-Z]{2}|[0-9]{3}))"
    r"\.(?P<ext>txt|typ|html)$"
)
_TIER = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class TemplateRef:
    """One template file, as read when the store was built."""

    id: str
    """`<channel>/<tier>/<name>.<locale>`, e.g. "sms/early/reminder.zh-CN"."""
    channel: Channel
    tier: str
    name: str
    locale: str
    path: Path
    content_hash: str
    """sha256 hex of the template file's bytes followed by the bytes of the layout modules it
    imports (letters); the front matter, its vendor block included, is part of the file."""
    metadata: TemplateMetadata
    source: str
    """The template text, front matter included."""
    css: str | None = field(default=None, repr=False)
    """Letters: the text of the layout modules it imports, one after the other (what an
    approval records and diffs beside the template); None for sms and push."""
    modules: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """Letters: (file name, text) of each layout module it imports, spliced in when rendered."""


def _normal_locale(locale: str) -> str:
    return locale.replace("_", "-")


class TemplateStore:
    """Reads every template under `templates_dir` at construction; raises TemplateError naming
    each bad file and what is wrong with it."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        if not templates_dir.is_dir():
            raise TemplateError(f"{templates_dir}: templates directory does not exist")
        self._by_id: dict[str, TemplateRef] = {}
        problems: list[str] = []
        for path in sorted(templates_dir.rglob("*")):
            relative = path.relative_to(templates_dir)
            if path.is_dir() or any(part.startswith(".") for part in relative.parts):
                continue
            try:
                ref = self._read(path, relative)
            except _Problem as problem:
                problems.append(f"{self._display(path)}: {problem}")
                continue
            if ref is not None:
                self._by_id[ref.id] = ref
        if problems:
            raise TemplateError("; ".join(problems))

    def find(self, channel: Channel | str, tier: str, name: str, locale: str) -> TemplateRef | None:
        return self._by_id.get(f"{Channel(channel)}/{tier}/{name}.{_normal_locale(locale)}")

    def get(self, template_id: str) -> TemplateRef:
        ref = self._by_id.get(template_id)
        if ref is None:
            raise TemplateError(f"template {template_id!r} does not exist in {self.templates_dir}")
        return ref

    def all(self) -> list[TemplateRef]:
        return sorted(self._by_id.values(), key=lambda ref: ref.id)

    def _display(self, path: Path) -> str:
        # templates/messages/sms/... in a standard program directory.
        try:
            return str(path.relative_to(self.templates_dir.parent.parent))
        except ValueError:
            return str(path)

    def _read(self, path: Path, relative: Path) -> TemplateRef | None:
        parts = relative.parts
        if path.suffix in {".css", ".html"} and parts[0] == Channel.LETTER:
            raise _Problem(
                "letters are Typst now: <name>.<locale>.typ, laid out by templates/typst/*.typ"
            )
        if path.suffix not in {".txt", ".typ", ".html"}:
            return None  # README files and the like
        if len(parts) != 3:
            raise _Problem("templates live in <channel>/<tier>/<name>.<locale>.<ext>")
        channel_dir, tier, file_name = parts
        try:
            channel = Channel(channel_dir)
        except ValueError:
            channel = None
        if channel is None or channel not in EXTENSIONS:
            known = ", ".join(EXTENSIONS)
            raise _Problem(f"unknown channel directory {channel_dir!r} (known: {known})")
        if _TIER.match(tier) is None:
            raise _Problem(f"tier directory {tier!r} is not a lowercase name")
        match = _FILE_NAME.match(file_name)
        if match is None:
            raise _Problem("file name must be <name>.<locale>.<ext>, e.g. reminder.en-US.txt")
        if path.suffix != EXTENSIONS[channel]:
            raise _Problem(f"{channel} templates end in {EXTENSIONS[channel]}")
        name, locale = match.group("name"), match.group("locale")
        template_id = f"{channel}/{tier}/{name}.{locale}"

        data = path.read_bytes()
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Problem("is not UTF-8 text") from None
        try:
            metadata = parse_front_matter(source)
        except ValueError as exc:
            raise _Problem(str(exc)) from None
        expected = {"id": template_id, "channel": channel, "tier": tier, "locale": locale}
        for key, value in expected.items():
            declared = getattr(metadata, key)
            if declared != value:
                raise _Problem(
                    f"front matter: {key} is {str(declared)!r} but the path says {str(value)!r}"
                )
        if metadata.vendor is not None and metadata.vendor.aliyun and channel is not Channel.SMS:
            raise _Problem("front matter: vendor.aliyun: Aliyun SMS templates are sms templates")

        css: str | None = None
        modules: list[tuple[str, str]] = []
        digest = hashlib.sha256(data)
        if channel is Channel.LETTER:
            for module in imported_modules(source):
                module_path = self.templates_dir.parent / LAYOUT_DIR / module
                if not module_path.is_file():
                    raise _Problem(f"imports {module}, which is not in templates/{LAYOUT_DIR}/")
                module_bytes = module_path.read_bytes()
                digest.update(module_bytes)
                try:
                    modules.append((module, module_bytes.decode("utf-8")))
                except UnicodeDecodeError:
                    raise _Problem(f"{self._display(module_path)} is not UTF-8 text") from None
            if not modules:
                raise _Problem('a letter imports its layout: #import "letter.typ": *')
            css = "\n".join(text for _, text in modules)
        return TemplateRef(
            id=template_id,
            channel=channel,
            tier=tier,
            name=name,
            locale=locale,
            path=path,
            content_hash=digest.hexdigest(),
            metadata=metadata,
            source=source,
            css=css,
            modules=tuple(modules),
        )


class _Problem(Exception):
    """What is wrong with one file; the store adds the file name."""
