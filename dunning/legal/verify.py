"""Checking a case packet against its manifest: every changed, missing or extra file.

Needs nothing but the ZIP: whoever received the packet (a lawyer, a court clerk) can check it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dunning.legal.packet import FORMAT, MANIFEST


@dataclass
class Verification:
    packet_sha256: str
    files: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What made the packet unreadable: not a ZIP, no manifest, a manifest that is not valid."""
    about: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra or self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "packet_sha256": self.packet_sha256,
            "files": self.files,
            "changed": self.changed,
            "missing": self.missing,
            "extra": self.extra,
            "problems": self.problems,
            "about": self.about,
        }


def _entries(manifest: Any) -> list[tuple[str, str]]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"manifest.json is not a {FORMAT} manifest")
    files = manifest.get("files")
    if not isinstance(files, list):
        raise ValueError("manifest.json has no list of files")
    entries = []
    for item in files:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("name"), str)
            and isinstance(item.get("sha256"), str)
        ):
            raise ValueError("manifest.json lists a file without a name and sha256")
        entries.append((item["name"], item["sha256"]))
    return entries


def verify_packet(path: Path) -> Verification:
    content = path.read_bytes()
    result = Verification(packet_sha256=hashlib.sha256(content).hexdigest())
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        result.problems.append("not a ZIP file")
        return result
    with archive:
        names = [info.filename for info in archive.infolist()]
        if MANIFEST not in names:
            result.problems.append("no manifest.json in the packet")
            return result
        try:
            manifest = json.loads(archive.read(MANIFEST).decode("utf-8"))
            entries = _entries(manifest)
        except (ValueError, UnicodeDecodeError) as exc:
            result.problems.append(str(exc) if isinstance(exc, ValueError) else "unreadable")
            return result
        about = manifest.get("about")
        result.about = about if isinstance(about, dict) else {}
        listed = {name for name, _ in entries}
        present = set(names)
        result.files = len(entries)
        for name, expected in entries:
            if name not in present:
                result.missing.append(name)
                continue
            try:
                actual = hashlib.sha256(archive.read(name)).hexdigest()
            except (zipfile.BadZipFile, OSError):
                result.changed.append(name)  # a damaged entry fails its CRC check
                continue
            if actual != expected:
                result.changed.append(name)
        result.extra = sorted(present - listed - {MANIFEST})
        if len(names) != len(present):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            result.problems.append(f"duplicate entries: {', '.join(duplicated)}")
    return result
