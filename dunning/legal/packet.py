"""The case packet as bytes: CSV tables, the manifest, and a byte-for-byte reproducible ZIP.

Reproducible: entries go in a fixed order, every entry has the same timestamp (a date of the
case, never the clock), the same permissions and compression, and JSON has sorted keys. The same
files and date always give the same ZIP bytes, so the packet's SHA-256 identifies its content.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

MANIFEST = "manifest.json"
FORMAT = "dunning-case-packet/1"
_PERMISSIONS = 0o100644  # a regular file, rw-r--r--
_UNIX = 3


@dataclass(frozen=True)
class PacketFile:
    name: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 CSV with a byte-order mark (spreadsheets then read Chinese text right), CRLF."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else str(value) for value in row])
    return buffer.getvalue().encode("utf-8-sig")


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def manifest(files: Sequence[PacketFile], about: dict[str, Any]) -> PacketFile:
    """manifest.json: what the packet is about, and the SHA-256 and size of every other file."""
    names = [f.name for f in files]
    if MANIFEST in names or len(set(names)) != len(names):
        raise ValueError("packet file names must be unique and not manifest.json")
    data = {
        "format": FORMAT,
        "about": about,
        "files": [{"name": f.name, "sha256": f.sha256, "bytes": len(f.content)} for f in files],
    }
    return PacketFile(MANIFEST, json_bytes(data))


def write_zip(files: Sequence[PacketFile], stamp: date) -> bytes:
    """The files, in this order, as a ZIP whose bytes depend only on the files and `stamp`."""
    if stamp.year < 1980:
        raise ValueError("ZIP timestamps start in 1980")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for item in files:
            info = zipfile.ZipInfo(
                item.name, date_time=(stamp.year, stamp.month, stamp.day, 0, 0, 0)
            )
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = _UNIX
            info.external_attr = _PERMISSIONS << 16
            archive.writestr(info, item.content, compresslevel=9)
    return buffer.getvalue()


def build_packet(files: Sequence[PacketFile], about: dict[str, Any], stamp: date) -> bytes:
    """The documents, then manifest.json last, zipped reproducibly."""
    return write_zip([*files, manifest(files, about)], stamp)
