"""Checking a case packet against its manifest: every changed, missing, extra or unreadable file.

Needs nothing but the ZIP: whoever received the packet (a lawyer, a court clerk) can check it.
The ZIP is untrusted input: damaged bytes, a truncated file, a file that is no ZIP at all, a
member that would decompress to gigabytes (a zip bomb), names with `..` or control characters.
Every one of these is a verification failure that names the member, never a crash; nothing is
extracted to disk, and what is decompressed is bounded (MAX_FILE_BYTES per file, MAX_TOTAL_BYTES
per packet, MAX_MANIFEST_BYTES for the manifest), read in chunks so memory stays flat.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dunning.legal.packet import FORMAT, MANIFEST

MAX_MANIFEST_BYTES = 1 << 20
"""A manifest lists a handful of files in a few kilobytes."""
MAX_FILE_BYTES = 256 << 20
"""A packet's largest file is a PDF of a few hundred kilobytes."""
MAX_TOTAL_BYTES = 1 << 30
CHUNK = 1 << 20
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError)
"""What reading a damaged member raises: bad CRC, corrupt deflate data, a stream cut short,
a local header that does not match the directory, an encrypted entry."""


@dataclass
class Verification:
    packet_sha256: str
    files: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    """Files (the manifest too) whose bytes cannot be read, each with why: damaged compressed
    data, a failed CRC, a size beyond the limits."""
    problems: list[str] = field(default_factory=list)
    """What made the packet unreadable as a whole: not a ZIP, no manifest, a manifest that is
    not valid; and entry names that are unsafe or duplicated."""
    about: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra or self.unreadable or self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "packet_sha256": self.packet_sha256,
            "files": self.files,
            "changed": self.changed,
            "missing": self.missing,
            "extra": self.extra,
            "unreadable": [{"name": n, "reason": r} for n, r in self.unreadable.items()],
            "problems": self.problems,
            "about": self.about,
        }


def shown(name: str) -> str:
    """A member name as it may be printed: control characters (ANSI escapes, NUL) as \\x.. so
    a hostile name cannot drive the terminal."""
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in name
    )


def _unsafe(name: str) -> bool:
    """A name no packet of ours has, and an unzip tool could write outside its folder with."""
    if not name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return True
    return ".." in PurePosixPath(name).parts or not name.isprintable()


def _entries(manifest: Any) -> list[tuple[str, str, int | None]]:
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
        size = item.get("bytes")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValueError(f"manifest.json: {shown(item['name'])}: bytes is not a size")
        entries.append((item["name"], item["sha256"], size))
    return entries


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Unreadable(Exception):
    """A member whose content cannot be read; the message says why, without its bytes."""


def _why(exc: BaseException) -> str:
    if isinstance(exc, zipfile.BadZipFile) and "CRC" in str(exc):
        return "its CRC-32 check fails (damaged bytes)"
    if isinstance(exc, zlib.error):
        return "its compressed data is corrupt"
    if isinstance(exc, EOFError):
        return "its compressed data ends early (a truncated packet)"
    if isinstance(exc, RuntimeError) and "encrypted" in str(exc):
        return "it is encrypted"
    if isinstance(exc, zipfile.BadZipFile):
        return "its entry in the ZIP is damaged"
    return f"it cannot be read ({type(exc).__name__})"


def _read(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, budget: int | None = None
) -> tuple[str, bytes, int]:
    """SHA-256, the bytes if it is the manifest, and size: at most `limit` bytes decompressed,
    and no more than what is left of the packet's `budget`."""
    if info.flag_bits & 0x1:
        raise _Unreadable("it is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # Other methods (bzip2, LZMA) decompress a whole block at once: no bound on memory.
        raise _Unreadable(f"compression method {info.compress_type} is not one packets use")
    if info.file_size > limit:
        raise _Unreadable(f"it declares {info.file_size:,} bytes, more than the {limit:,} allowed")
    if budget is not None and info.file_size > budget:
        raise _Unreadable(
            f"the packet's files would decompress to more than {MAX_TOTAL_BYTES:,} bytes together"
        )
    digest = hashlib.sha256()
    kept = bytearray()
    size = 0
    try:
        # zipfile never returns more than the declared file_size, checked above.
        with archive.open(info) as stream:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                digest.update(chunk)
                if info.filename == MANIFEST:
                    kept += chunk
    except _READ_ERRORS as exc:
        raise _Unreadable(_why(exc)) from None
    return digest.hexdigest(), bytes(kept), size


def verify_packet(path: Path) -> Verification:
    result = Verification(packet_sha256=_file_sha256(path))
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        result.problems.append("not a ZIP file, or a truncated one")
        return result
    with archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        unsafe = sorted({shown(n) for n in names if _unsafe(n)})
        if unsafe:
            result.problems.append(f"unsafe entry names: {', '.join(unsafe)}")
        duplicated = sorted(shown(n) for n, count in Counter(names).items() if count > 1)
        if duplicated:
            result.problems.append(f"duplicate entries: {', '.join(duplicated)}")
        if MANIFEST not in names:
            result.problems.append("no manifest.json in the packet")
            return result
        try:
            _, raw, _ = _read(archive, archive.getinfo(MANIFEST), MAX_MANIFEST_BYTES)
            manifest = json.loads(raw.decode("utf-8"))
            entries = _entries(manifest)
        except _Unreadable as exc:
            result.unreadable[MANIFEST] = str(exc)
            return result
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            result.problems.append(
                str(exc) if type(exc) is ValueError else "manifest.json is not valid JSON"
            )
            return result
        about = manifest.get("about")
        result.about = about if isinstance(about, dict) else {}
        listed = {name for name, _, _ in entries}
        present = set(names)
        result.files = len(entries)
        budget = MAX_TOTAL_BYTES
        for name, expected, size in entries:
            if name not in present:
                result.missing.append(shown(name))
                continue
            info = archive.getinfo(name)
            if size is not None and info.file_size != size:
                result.changed.append(shown(name))  # not the size the manifest says
                continue
            try:
                actual, _, read = _read(archive, info, MAX_FILE_BYTES, budget)
            except _Unreadable as exc:
                result.unreadable[shown(name)] = str(exc)
                continue
            budget -= read
            if actual != expected:
                result.changed.append(shown(name))
        result.extra = sorted(shown(n) for n in present - listed - {MANIFEST})
    return result
