"""The packet ZIP: same files, same bytes; the manifest; verify finds every changed, missing or
extra file."""

from __future__ import annotations

import json
import zipfile
from datetime import date
from pathlib import Path

import pytest

from dunning.legal.packet import PacketFile, build_packet, csv_bytes, manifest
from dunning.legal.verify import verify_packet

STAMP = date(2026, 11, 24)
FILES = [
    PacketFile("01-cover-sheet.pdf", b"%PDF-1.7 cover"),
    PacketFile("03-schedule.csv", csv_bytes(["seq", "amount"], [[1, "100.00"], [2, None]])),
    PacketFile("05-final-demand-letter.pdf", b"%PDF-1.7 the letter as sent"),
]
ABOUT = {"case": "LC-000001", "currency": "CNY", "claim_total": "20000.00"}


def rezip(source: Path, target: Path, *, drop: str = "", change: str = "", add: str = "") -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename == drop:
                continue
            data = old.read(info.filename)
            new.writestr(info, data + b"!" if info.filename == change else data)
        if add:
            new.writestr(add, b"smuggled")
    return target


@pytest.fixture
def packet(tmp_path: Path) -> Path:
    path = tmp_path / "packet.zip"
    path.write_bytes(build_packet(FILES, ABOUT, STAMP))
    return path


def test_same_files_same_bytes() -> None:
    first = build_packet(FILES, ABOUT, STAMP)
    assert build_packet(list(FILES), dict(ABOUT), STAMP) == first
    assert build_packet(FILES, ABOUT, date(2026, 11, 25)) != first


def test_entries_in_order_with_fixed_time_and_permissions(packet: Path) -> None:
    with zipfile.ZipFile(packet) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == [f.name for f in FILES] + ["manifest.json"]
        assert {i.date_time for i in infos} == {(2026, 11, 24, 0, 0, 0)}
        assert {i.external_attr >> 16 for i in infos} == {0o100644}
        data = json.loads(archive.read("manifest.json"))
    assert data["about"] == ABOUT
    assert [(f["name"], f["bytes"]) for f in data["files"]] == [
        (f.name, len(f.content)) for f in FILES
    ]
    assert [f["sha256"] for f in data["files"]] == [f.sha256 for f in FILES]


def test_manifest_json_has_sorted_keys() -> None:
    text = manifest(FILES, {"b": 1, "a": 2}).content.decode()
    assert text.index('"a"') < text.index('"b"')
    assert text.index('"about"') < text.index('"files"') < text.index('"format"')


def test_csv_has_a_bom_and_crlf() -> None:
    assert FILES[1].content == "\ufeffseq,amount\r\n1,100.00\r\n2,\r\n".encode()


def test_verify_passes_an_intact_packet(packet: Path) -> None:
    result = verify_packet(packet)
    assert result.ok and result.files == 3
    assert result.about["case"] == "LC-000001"


def test_verify_catches_a_changed_file(packet: Path, tmp_path: Path) -> None:
    changed = rezip(packet, tmp_path / "changed.zip", change="05-final-demand-letter.pdf")
    result = verify_packet(changed)
    assert not result.ok
    assert (result.changed, result.missing, result.extra) == (
        ["05-final-demand-letter.pdf"],
        [],
        [],
    )


def test_verify_catches_missing_and_extra_files(packet: Path, tmp_path: Path) -> None:
    result = verify_packet(
        rezip(packet, tmp_path / "x.zip", drop="01-cover-sheet.pdf", add="notes.txt")
    )
    assert (result.missing, result.extra, result.changed) == (
        ["01-cover-sheet.pdf"],
        ["notes.txt"],
        [],
    )


def test_verify_catches_bytes_flipped_inside_the_zip(packet: Path, tmp_path: Path) -> None:
    data = bytearray(packet.read_bytes())
    start = data.index(b"PK\x03\x04", 1)  # the second entry's local header
    data[start + 40] ^= 0xFF  # inside its compressed data
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    result = verify_packet(damaged)
    assert not result.ok and list(result.unreadable) == ["03-schedule.csv"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a zip", "not a ZIP file, or a truncated one"),
        (None, "no manifest.json in the packet"),
    ],
)
def test_verify_reports_unreadable_packets(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "bad.zip"
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.pdf", b"x")
    else:
        path.write_bytes(content)
    assert verify_packet(path).problems == [problem]
