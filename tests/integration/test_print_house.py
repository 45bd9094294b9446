"""print-house-letter: batches of PDFs and a manifest written atomically and exactly once to a
drop directory, results files read back as receipts, and a returned letter marking the
customer's address through the daily run."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from adapters.base import DeliveryStatus, OutboundMessage, SendOutcome, SentMessage
from adapters.print_house import (
    INDEX_FILE,
    PrintHouseLetterAdapter,
    PrintHouseOptions,
    ResultsFileError,
)
from adapters.registry import adapter_class
from dunning.bootstrap import Runtime
from dunning.db.tables import ACCOUNT, CUSTOMER, OUTBOX
from dunning.services.daily import poll_receipts, run_daily_outreach
from dunning.types import Channel
from tests.factories import OPEN_FOR_ALL, add_account
from tests.helpers import outreach_at

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
PDF = b"%PDF-1.7\n1 0 obj << /Type /Page >> endobj\n2 0 obj << /Type /Pages >> endobj\n%%EOF\n"
ADDRESS = {
    "name": "Wang Fang",
    "lines": ["88 Nanjing Road", "Apt 1201"],
    "city": "Shanghai",
    "region": "Shanghai",
    "postal_code": "200001",
    "country": "CN",
}


def letter(n: int, **changes: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "idempotency_key": f"dn1-{n:040x}",
        "channel": Channel.LETTER,
        "recipient": "Wang Fang\n88 Nanjing Road\nApt 1201\nShanghai 200001",
        "body": "a letter",
        "document": PDF + str(n).encode(),
        "address": ADDRESS,
        "jurisdiction": "CN",
        "template_id": "letter/early/notice.zh-CN",
    }
    fields.update(changes)
    return OutboundMessage(**fields)


def adapter(tmp_path: Path, **options: Any) -> PrintHouseLetterAdapter:
    settings = PrintHouseOptions(house="acme", **options)
    return PrintHouseLetterAdapter(
        tmp_path / "drop", tmp_path / "results", settings, clock=lambda: NOW
    )


def visible(drop: Path) -> list[str]:
    return sorted(p.name for p in drop.iterdir() if not p.name.startswith("."))


def tree(drop: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(drop)): p.read_bytes()
        for p in sorted(drop.rglob("*"))
        if p.is_file() and p.name != ".dunning-lock"
    }


def test_the_adapter_is_registered_and_takes_its_options() -> None:
    assert adapter_class("print-house-letter") is PrintHouseLetterAdapter
    with pytest.raises(ValueError):
        PrintHouseOptions(house="Acme House")  # becomes a directory name: refused


def test_a_batch_is_pdfs_named_by_key_and_a_manifest_whose_sha256_match(tmp_path: Path) -> None:
    house = adapter(tmp_path)
    batch = [letter(1), letter(2)]
    results = asyncio.run(house.send(batch))
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED] * 2
    assert not any(r.duplicate for r in results)
    (batch_id,) = visible(house.drop_dir)
    assert batch_id.startswith("acme-20261102-")
    assert [r.gateway_message_id for r in results] == [
        f"{batch_id}/{m.idempotency_key}" for m in batch
    ]
    folder = house.drop_dir / batch_id
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{m.idempotency_key}.pdf" for m in batch] + ["manifest.csv", "manifest.json"]
    )
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    assert manifest["batch"] == batch_id and manifest["count"] == 2
    for entry in manifest["letters"]:
        data = (folder / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data) and entry["pages"] == 1
        assert entry["address"] == ADDRESS
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["key"] for r in rows] == sorted(m.idempotency_key for m in batch)
    for row in rows:
        assert row["sha256"] == hashlib.sha256((folder / row["file"]).read_bytes()).hexdigest()
        assert (row["name"], row["address_line1"], row["address_line2"], row["city"]) == (
            "Wang Fang",
            "88 Nanjing Road",
            "Apt 1201",
            "Shanghai",
        )
    # No personal data in any name in the drop.
    names = " ".join(str(p) for p in house.drop_dir.rglob("*"))
    assert "Wang" not in names and "Nanjing" not in names


def test_a_rerun_writes_nothing_new_and_answers_duplicates(tmp_path: Path) -> None:
    house = adapter(tmp_path)
    first = asyncio.run(house.send([letter(1), letter(2)]))
    before = tree(house.drop_dir)
    again = asyncio.run(adapter(tmp_path).send([letter(2), letter(1)]))
    assert tree(house.drop_dir) == before
    assert [(r.outcome, r.duplicate) for r in again] == [(SendOutcome.ACCEPTED, True)] * 2
    assert {r.gateway_message_id for r in again} == {r.gateway_message_id for r in first}
    # A batch with one old and one new letter: only the new one is written.
    mixed = asyncio.run(house.send([letter(2), letter(3)]))
    assert [r.duplicate for r in mixed] == [True, False]
    assert len(visible(house.drop_dir)) == 2
    new_batch = mixed[1].gateway_message_id.split("/")[0]  # type: ignore[union-attr]
    assert sorted(p.name for p in (house.drop_dir / new_batch).glob("*.pdf")) == [
        f"{letter(3).idempotency_key}.pdf"
    ]


def test_the_drop_itself_is_the_record_when_the_index_is_lost(tmp_path: Path) -> None:
    house = adapter(tmp_path)
    asyncio.run(house.send([letter(1)]))
    index = house.drop_dir / INDEX_FILE
    index.write_bytes(index.read_bytes()[:-7])  # a line torn by a crash
    again = asyncio.run(house.send([letter(1)]))
    assert again[0].duplicate and len(visible(house.drop_dir)) == 1


CRASH = """
import asyncio, os, sys
from datetime import UTC, datetime
from pathlib import Path
from adapters.print_house import PrintHouseLetterAdapter, PrintHouseOptions
from tests.integration.test_print_house import letter
root = Path(sys.argv[1])
house = PrintHouseLetterAdapter(
    root / "drop", root / "results", PrintHouseOptions(house="acme"),
    clock=lambda: datetime(2026, 11, 2, tzinfo=UTC),
)
house._rename = lambda temp, final: os._exit(9)  # the process dies before the rename
asyncio.run(house.send([letter(1), letter(2)]))
"""


def test_a_crash_before_the_rename_leaves_no_batch_and_the_retry_writes_it_once(
    tmp_path: Path,
) -> None:
    done = subprocess.run([sys.executable, "-c", CRASH, str(tmp_path)], cwd=Path.cwd())
    assert done.returncode == 9
    drop = tmp_path / "drop"
    assert visible(drop) == []
    assert [p.name for p in drop.glob(".tmp-*")]  # the half-written batch, hidden
    house = adapter(tmp_path)
    results = asyncio.run(house.send([letter(1), letter(2)]))
    assert [(r.outcome, r.duplicate) for r in results] == [(SendOutcome.ACCEPTED, False)] * 2
    assert len(visible(drop)) == 1 and not list(drop.glob(".tmp-*"))
    assert asyncio.run(house.send([letter(1), letter(2)]))[0].duplicate


def test_a_letter_without_address_fields_or_pdf_is_refused_and_not_written(
    tmp_path: Path,
) -> None:
    house = adapter(tmp_path)
    results = asyncio.run(house.send([letter(1, address=None), letter(2, document=None)]))
    assert [r.outcome for r in results] == [SendOutcome.REJECTED] * 2
    assert not house.drop_dir.exists() or visible(house.drop_dir) == []


def write_results(path: Path, rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["key", "status", "tracking_number", "date"], *rows])
    return path


def test_a_results_file_becomes_receipts(tmp_path: Path) -> None:
    house = adapter(tmp_path)
    sent = asyncio.run(house.send([letter(1), letter(2), letter(3)]))
    k1, k2, k3 = (r.idempotency_key for r in sent)
    write_results(
        house.returns_dir / "acme-results-20261105.csv",
        [
            [k1, "mailed", "EMS123", "2026-11-03"],
            [k2, "returned", "", "2026-11-05"],
            [k3, "failed", "", "2026-11-04T10:00:00+08:00"],
            ["dn1-unknown", "mailed", "", "2026-11-03"],
        ],
    )
    messages = [SentMessage(r.gateway_message_id or "", r.idempotency_key, "", NOW) for r in sent]
    reports = {r.idempotency_key: r for r in asyncio.run(house.fetch_receipts(messages))}
    assert {k: r.status for k, r in reports.items()} == {
        k1: DeliveryStatus.PENDING,  # in the post: a later return still counts
        k2: DeliveryStatus.UNDELIVERABLE,
        k3: DeliveryStatus.FAILED,
    }
    assert reports[k2].event_id == f"acme-results-20261105.csv:{k2}:returned"
    assert reports[k2].gateway_message_id == sent[1].gateway_message_id
    assert "EMS123" in (reports[k1].reason or "")
    delivered = adapter(tmp_path, mailed_status="delivered")
    assert asyncio.run(delivered.fetch_receipts(messages[:1]))[0].status == DeliveryStatus.DELIVERED


def test_a_malformed_results_file_is_refused_naming_the_row_and_no_value(tmp_path: Path) -> None:
    house = adapter(tmp_path)
    (sent,) = asyncio.run(house.send([letter(1)]))
    write_results(
        house.returns_dir / "bad.csv",
        [[sent.idempotency_key, "returned", "", "2026-11-05"],
         ["88 Nanjing Road", "returned", "", "2026-11-05"]],
    )  # fmt: skip
    message = SentMessage(sent.gateway_message_id or "", sent.idempotency_key, "", NOW)
    with pytest.raises(ResultsFileError) as caught:
        asyncio.run(house.fetch_receipts([message]))
    assert "bad.csv row 3" in str(caught.value) and "key" in str(caught.value)
    assert "Nanjing" not in str(caught.value)
    write_results(house.returns_dir / "bad.csv", [[sent.idempotency_key, "lost", "", "x"]])
    with pytest.raises(ResultsFileError, match=r"bad.csv row 2: status"):
        asyncio.run(house.fetch_receipts([message]))


def test_check_says_what_is_missing(tmp_path: Path) -> None:
    house = adapter(tmp_path)
    assert "drop_dir" in (asyncio.run(house.check()) or "")
    house.drop_dir.mkdir()
    assert "returns_dir" in (asyncio.run(house.check()) or "")
    house.returns_dir.mkdir()
    assert asyncio.run(house.check()) is None
    assert visible(house.drop_dir) == [] and not list(house.drop_dir.iterdir())


def test_a_returned_letter_from_the_results_file_marks_the_address_through_the_daily_run(
    runtime: Runtime, tmp_path: Path
) -> None:
    house = adapter(tmp_path)
    with runtime.unit_of_work() as c:
        account = add_account(c, dpd=31, as_of=OPEN_FOR_ALL.date(), jurisdiction="CN")
    parts = outreach_at(runtime, approved=True, adapters=lambda channel: house)
    try:
        run_daily_outreach(parts, OPEN_FOR_ALL.date())
        with runtime.engine.connect() as connection:
            key, gateway_id, status = connection.execute(
                select(
                    OUTBOX.c.idempotency_key, OUTBOX.c.gateway_message_id, OUTBOX.c.status
                ).where(OUTBOX.c.channel == "letter")
            ).one()
        assert status == "sent"
        (batch_id,) = visible(house.drop_dir)
        assert gateway_id == f"{batch_id}/{key}"
        assert (house.drop_dir / batch_id / f"{key}.pdf").read_bytes().startswith(b"%PDF")
        write_results(
            house.returns_dir / "r1.csv",
            [[key, "mailed", "EMS1", "2026-11-03"], [key, "returned", "", "2026-11-20"]],
        )
        assert poll_receipts(parts).recorded == 1
        assert poll_receipts(parts).recorded == 0  # read again: nothing new
    finally:
        parts.close()
    with runtime.engine.connect() as connection:
        assert connection.execute(select(OUTBOX.c.status)).scalar_one() == "undeliverable"
        returned = connection.execute(
            select(CUSTOMER.c.address_invalid_at)
            .join(ACCOUNT, ACCOUNT.c.customer_id == CUSTOMER.c.id)
            .where(ACCOUNT.c.id == account)
        ).scalar_one()
    assert returned is not None
