"""`dunning run legal`, `dunning legal run` and `dunning cases ...` from the command line, and the
legal-escalation Prefect flow."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dunning.bootstrap import Runtime
from dunning.db.outreach_models import Run
from dunning.legal.packet import PacketFile, build_packet, csv_bytes, json_bytes
from tests.helpers import invoke
from tests.integration.test_legal_escalation import AS_OF, add_eligible, documents

DAY = AS_OF.isoformat()


@pytest.fixture
def two_eligible(runtime: Runtime) -> tuple[int, int]:
    store = documents(runtime)
    with runtime.unit_of_work() as c:
        return (
            add_eligible(c, store),
            add_eligible(c, store, jurisdiction="US", balance_minor=8_000_00),
        )


def test_cases_from_the_command_line(
    capsys: pytest.CaptureFixture[str], two_eligible: tuple[int, int], tmp_path: Path
) -> None:
    first = invoke(capsys, "run", "legal", "--as-of", DAY, "--in-process", "--json")
    assert first.code == 0, first.err
    assert first.json()["accounts"]["by_outcome"] == {"opened": 2, "refused": 0}
    again = invoke(capsys, "legal", "run", "--as-of", DAY, "--in-process")
    assert again.code == 0 and "0 cases opened" in again.out
    assert "already_escalated" in again.out

    listed = invoke(capsys, "cases", "list", "--json").json()
    assert [(c["reference"], c["status"], c["customer"]) for c in listed] == [
        ("LC-000002", "proposed", "A** L**"),
        ("LC-000001", "proposed", "王*"),
    ]
    table = invoke(capsys, "cases", "list")
    assert "LC-000001" in table.out and "王伟" not in table.out and "Ann Lee" not in table.out

    shown = invoke(capsys, "cases", "show", "1", "--json").json()
    assert shown["customer"] == {"name": "王*"} and shown["claim"] == "20000.00"
    assert "+8613812345678" not in invoke(capsys, "cases", "show", "1").out
    assert "+8613812345678" in invoke(capsys, "cases", "show", "1", "--unmask").out

    wrong = invoke(
        capsys,
        "cases",
        "close",
        "1",
        "--outcome",
        "judgment",
        "--user",
        "ana",
        "--note",
        "too early",
    )
    assert wrong.code == 1
    assert "case 1 is proposed: it cannot become judgment" in wrong.err
    bad = invoke(capsys, "cases", "close", "1", "--outcome", "lost", "--user", "a", "--note", "n")
    assert bad.code == 1
    assert bad.err.strip() == "error: --outcome 'lost': use one of judgment, settled, withdrawn"
    no_user = invoke(capsys, "cases", "approve", "1", "--note", "n")
    assert no_user.code == 2 and "user" in no_user.err
    approved = invoke(
        capsys, "cases", "approve", "1", "--user", "ana", "--note", "worth it", "--on", DAY
    )
    assert approved.code == 0 and "LC-000001 is now approved" in approved.out
    filed = invoke(
        capsys,
        "cases",
        "file",
        "1",
        "--user",
        "bo",
        "--note",
        "court ref 123",
        "--on",
        "2026-11-30",
        "--json",
    )
    assert filed.json()["filed_on"] == "2026-11-30"
    withdrawn = invoke(
        capsys,
        "cases",
        "close",
        "2",
        "--outcome",
        "withdrawn",
        "--user",
        "ana",
        "--note",
        "customer called",
        "--on",
        DAY,
    )
    assert withdrawn.code == 0

    packet = invoke(capsys, "cases", "packet", "1", "--out", str(tmp_path), "--json")
    assert packet.code == 0, packet.err
    path = Path(packet.json()["path"])
    assert (
        invoke(capsys, "cases", "show", "1", "--json").json()["packet_sha256"]
        == (packet.json()["sha256"])
    )
    ok = invoke(capsys, "cases", "verify", str(path))
    assert ok.code == 0 and "ok: 9 files match the manifest" in ok.out

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(tampered, "w") as new:
        for info in old.infolist():
            if info.filename == "06-customer-identity.pdf":
                continue
            data = old.read(info.filename)
            new.writestr(
                info, data + b" " if info.filename == "02-statement-of-claim.pdf" else data
            )
        new.writestr("extra.txt", b"x")
    bad_packet = invoke(capsys, "cases", "verify", str(tampered), "--json")
    assert bad_packet.code == 1
    assert {k: bad_packet.json()[k] for k in ("ok", "changed", "missing", "extra")} == {
        "ok": False,
        "changed": ["02-statement-of-claim.pdf"],
        "missing": ["06-customer-identity.pdf"],
        "extra": ["extra.txt"],
    }
    text = invoke(capsys, "cases", "verify", str(tampered))
    assert "changed: 02-statement-of-claim.pdf" in text.out and "missing: 06" in text.out

    reviews = invoke(capsys, "cases", "reviews", "--json").json()
    assert reviews["by_reason"] == {"already_escalated": 2}
    assert invoke(capsys, "cases", "show", "99").err.strip().endswith("no legal case 99")


def test_the_legal_escalation_flow(
    flows_env: Path, repo_dir: Path, runtime: Runtime, two_eligible: tuple[int, int]
) -> None:
    from flows.legal_escalation import legal_escalation

    summary = legal_escalation(as_of=AS_OF, project_dir=str(repo_dir))
    assert summary["accounts"]["by_outcome"] == {"opened": 2, "refused": 0}
    assert summary["flow"] == "legal-escalation"
    with runtime.engine.connect() as c:
        run = c.execute(select(Run.__table__).where(Run.__table__.c.id == summary["run_id"])).one()  # type: ignore[attr-defined]
    assert run.status == "completed" and run.prefect_flow_run_id
    rerun = legal_escalation(as_of=AS_OF, project_dir=str(repo_dir))
    assert rerun["accounts"]["by_outcome"]["opened"] == 0


# `cases verify` on packets that are damaged or hostile: each is a verification failure (exit 1,
# the same report as a changed file) that names the member, never an unexpected error.

LETTER = "05-final-demand-letter.pdf"


def _packet(path: Path) -> Path:
    """A packet as `cases packet` writes it, with a letter big enough to damage inside."""
    letter = "".join(f"{n * 7919 % 100_003} " for n in range(20_000)).encode()
    files = [
        PacketFile("01-cover-sheet.pdf", b"%PDF-1.7 cover"),
        PacketFile("03-schedule.csv", csv_bytes(["seq", "amount"], [[1, "100.00"]])),
        PacketFile(LETTER, b"%PDF-1.7 " + letter),
    ]
    path.write_bytes(build_packet(files, {"case": "LC-000001"}, date(2026, 11, 24)))
    return path


def _data_offset(data: bytes, name: str) -> int:
    """Where a member's compressed bytes start: after its local header, name and extra field."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        start = archive.getinfo(name).header_offset
    name_length, extra_length = struct.unpack_from("<HH", data, start + 26)
    return start + 30 + name_length + extra_length


def _central_entry(data: bytes, name: str) -> int:
    """Where a member's entry in the central directory starts."""
    at = data.index(b"PK\x01\x02")
    while data[at + 46 : at + 46 + len(name)] != name.encode():
        at = data.index(b"PK\x01\x02", at + 4)
    return at


def _zip_by_hand(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """A ZIP of deflated entries (name, deflate stream, CRC-32, declared size), written with
    whatever sizes it is given, as an attacker would."""
    local, central = b"", b""
    for name, stream, crc, size in entries:
        sizes = (crc, len(stream), size, len(name.encode()), 0)
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x5B78, *sizes,
                               0, 0, 0, 0o100644 << 16, len(local)) + name.encode()  # fmt: skip
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x5B78, *sizes)
        local += name.encode() + stream
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                      len(central), len(local), 0)  # fmt: skip
    return local + central + end


def _verify(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[Any, Any]:
    as_json = invoke(capsys, "cases", "verify", str(path), "--json")
    text = invoke(capsys, "cases", "verify", str(path))
    for result in (as_json, text):
        assert result.code == 1, result.err
        assert "unexpected" not in result.err
        assert result.err.strip().endswith("the packet does not match its manifest")
    return as_json.json(), text


def test_verify_names_a_member_whose_compressed_bytes_are_corrupt(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = bytearray(_packet(tmp_path / "p.zip").read_bytes())
    # A final block of the reserved type 3: zlib's "Error -3 ... invalid block type".
    data[_data_offset(bytes(data), LETTER)] = 0b111
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    report, text = _verify(capsys, damaged)
    assert report["ok"] is False and report["changed"] == []
    assert report["unreadable"] == [{"name": LETTER, "reason": "its compressed data is corrupt"}]
    assert f"unreadable: {LETTER}: its compressed data is corrupt" in text.out


def test_verify_names_a_member_that_fails_its_crc(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = bytearray(_packet(tmp_path / "p.zip").read_bytes())
    crc = _central_entry(bytes(data), LETTER) + 16
    data[crc : crc + 4] = bytes(b ^ 0xFF for b in data[crc : crc + 4])
    damaged = tmp_path / "crc.zip"
    damaged.write_bytes(bytes(data))
    report, _ = _verify(capsys, damaged)
    assert report["unreadable"] == [
        {"name": LETTER, "reason": "its CRC-32 check fails (damaged bytes)"}
    ]


def test_verify_names_an_unreadable_manifest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = bytearray(_packet(tmp_path / "p.zip").read_bytes())
    data[_data_offset(bytes(data), "manifest.json")] = 0b111
    damaged = tmp_path / "manifest.zip"
    damaged.write_bytes(bytes(data))
    report, _ = _verify(capsys, damaged)
    assert report["unreadable"] == [
        {"name": "manifest.json", "reason": "its compressed data is corrupt"}
    ]


@pytest.mark.parametrize("cut", ["truncated", "not a zip", "empty"])
def test_verify_fails_a_truncated_packet_or_one_that_is_no_zip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cut: str
) -> None:
    whole = _packet(tmp_path / "p.zip").read_bytes()
    content = {"truncated": whole[: len(whole) // 2], "not a zip": b"%PDF-1.7", "empty": b""}[cut]
    path = tmp_path / "bad.zip"
    path.write_bytes(content)
    report, text = _verify(capsys, path)
    assert report["problems"] == ["not a ZIP file, or a truncated one"]
    assert "problem: not a ZIP file, or a truncated one" in text.out


def test_verify_does_not_decompress_a_zip_bomb(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A letter that inflates to 512 MiB of zeros from 500 kB, its header and the manifest
    agreeing on that size: refused by its declared size, before anything is decompressed."""
    chunk, count = b"\0" * (1 << 20), 512
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    # After a full flush the compressor starts afresh, so every MiB of zeros deflates to the
    # same bytes: the stream is built without compressing 512 MiB.
    block = deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH)
    stream = block * count + deflate.flush()
    sha, crc = hashlib.sha256(), 0
    for _ in range(count):
        sha.update(chunk)
        crc = zlib.crc32(chunk, crc)
    size = len(chunk) * count
    listed = {"name": LETTER, "sha256": sha.hexdigest(), "bytes": size}
    manifest = json_bytes({"format": "dunning-case-packet/1", "about": {}, "files": [listed]})
    packed = zlib.compressobj(9, zlib.DEFLATED, -15)
    manifest_stream = packed.compress(manifest) + packed.flush()
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(
        _zip_by_hand(
            [
                (LETTER, stream, crc, size),
                ("manifest.json", manifest_stream, zlib.crc32(manifest), len(manifest)),
            ]
        )
    )
    with zipfile.ZipFile(bomb) as archive:  # a well-formed ZIP
        assert archive.read("manifest.json") == manifest
        assert archive.getinfo(LETTER).file_size == size

    report, _ = _verify(capsys, bomb)
    assert report["unreadable"] == [
        {
            "name": LETTER,
            "reason": "it declares 536,870,912 bytes, more than the 268,435,456 allowed",
        }
    ]


def test_verify_stops_at_the_whole_packets_bound(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dunning.legal import verify

    monkeypatch.setattr(verify, "MAX_TOTAL_BYTES", 100_000)
    report, _ = _verify(capsys, _packet(tmp_path / "p.zip"))  # the letter is ~120 kB
    assert [u["name"] for u in report["unreadable"]] == [LETTER]
    assert "more than 100,000 bytes together" in report["unreadable"][0]["reason"]


def test_verify_reports_unsafe_names_without_echoing_control_characters(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    packet = _packet(tmp_path / "p.zip")
    hostile = tmp_path / "hostile.zip"
    names = ["../../outside.txt", "/etc/cron.d/x", "\x1b[2Jclear", "[bold]markup"]
    with zipfile.ZipFile(packet) as old, zipfile.ZipFile(hostile, "w") as new:
        for info in old.infolist():
            new.writestr(info, old.read(info.filename))
        for name in names:
            new.writestr(name, b"x")
    before = sorted(tmp_path.rglob("*"))
    report, text = _verify(capsys, hostile)
    assert sorted(tmp_path.rglob("*")) == before  # nothing extracted
    shown = ["../../outside.txt", "/etc/cron.d/x", "\\x1b[2Jclear", "[bold]markup"]
    assert report["extra"] == sorted(shown)
    assert report["problems"] == [f"unsafe entry names: {', '.join(sorted(shown[:3]))}"]
    assert "\x1b" not in text.out + text.err
    assert "extra: [bold]markup" in text.out
