"""Case packets from a real database: reproducible bytes, the letter exactly as sent, amounts
that reconcile to the ledger, both locales, and verify catching tampering."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from dunning.bootstrap import Runtime
from dunning.db.tables import INSTALMENT
from dunning.domain.money import to_decimal
from dunning.errors import DunningError
from dunning.legal.cases import transition_case
from dunning.legal.packets import FILES, build_case_packet, build_packet_bytes
from dunning.legal.service import run_legal_escalation
from dunning.legal.verify import verify_packet
from dunning.rendering import LetterPrinter
from tests.integration.test_legal_escalation import (
    ACCOUNT,
    AS_OF,
    CASE,
    OUTBOX,
    PAYMENT,
    add_eligible,
    add_message,
    documents,
)
from tests.integration.test_legal_escalation import cases as all_cases

INSTALMENT_COLUMNS = ("seq", "due_on", "amount_due_minor", "amount_paid_minor", "paid_on")
pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")


@pytest.fixture(scope="module")
def printer() -> LetterPrinter:
    return LetterPrinter()


@pytest.fixture
def proposed(runtime: Runtime) -> Iterator[dict[str, int]]:
    """A CN and a US case, each with history: an SMS, a middle letter, the final demand, a
    partial payment before the case and an extra instalment."""
    store = documents(runtime)
    with runtime.unit_of_work() as c:
        cn = add_eligible(c, store)
        us = add_eligible(c, store, jurisdiction="US", balance_minor=8_000_00)
        for account in (cn, us):
            add_message(
                c,
                store,
                account,
                letter_date=AS_OF - timedelta(days=80),
                step_id="middle-letter",
                template="notice",
            )
            add_message(
                c,
                store,
                account,
                letter_date=AS_OF - timedelta(days=30),
                step_id="late-sms",
                channel="sms",
                template="final_reminder",
            )
            c.execute(
                PAYMENT.insert().values(
                    external_id=f"P-{account}",
                    account_id=account,
                    amount_minor=20_00,
                    paid_on=AS_OF - timedelta(days=100),
                    method="app",
                )
            )
    run_legal_escalation(runtime, AS_OF)
    yield {c["account_id"]: c["id"] for c in all_cases(runtime)} | {"cn": cn, "us": us}


def pdftotext(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "doc.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-layout", str(path), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def read(packet: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(packet)) as archive:
        return archive.read(name)


def rows(packet: bytes, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(read(packet, name).decode("utf-8-sig"))))


def test_the_packet_built_twice_is_the_same_bytes_and_its_hash_is_stored(
    runtime: Runtime, proposed: dict[str, int], tmp_path: Path, printer: LetterPrinter
) -> None:
    case_id = proposed[proposed["cn"]]
    first = build_case_packet(runtime, case_id, tmp_path / "a", printer=printer)
    second = build_case_packet(runtime, case_id, tmp_path / "b", printer=LetterPrinter())
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest() == second.sha256
    assert first.path.name == f"LC-{case_id:06d}-packet.zip"
    stored = next(c for c in all_cases(runtime) if c["id"] == case_id)["packet_sha256"]
    assert stored == first.sha256
    assert verify_packet(first.path).ok
    with zipfile.ZipFile(first.path) as archive:
        assert archive.namelist() == [*FILES.values(), "manifest.json"]


def test_the_final_demand_letter_is_the_stored_file_exactly(
    runtime: Runtime, proposed: dict[str, int], printer: LetterPrinter
) -> None:
    case_id = proposed[proposed["cn"]]
    with runtime.engine.connect() as c:
        letter = c.execute(
            select(OUTBOX.c.document_path, OUTBOX.c.document_sha256)
            .join(CASE, CASE.c.final_demand_outbox_id == OUTBOX.c.id)
            .where(CASE.c.id == case_id)
        ).one()
    packet = build_packet_bytes(runtime, case_id, printer=printer).content
    sent = documents(runtime).path(letter.document_path).read_bytes()
    assert read(packet, "05-final-demand-letter.pdf") == sent
    assert hashlib.sha256(sent).hexdigest() == letter.document_sha256
    manifest = json.loads(read(packet, "manifest.json"))
    assert manifest["about"]["final_demand"]["sha256"] == letter.document_sha256
    # A stored letter that no longer matches its recorded hash stops the packet.
    documents(runtime).path(letter.document_path).write_bytes(sent + b"tampered")
    with pytest.raises(DunningError, match="does not match its recorded SHA-256"):
        build_packet_bytes(runtime, case_id, printer=printer)
    documents(runtime).path(letter.document_path).unlink()
    with pytest.raises(DunningError, match="missing from the document store"):
        build_packet_bytes(runtime, case_id, printer=printer)


def test_the_amounts_reconcile_to_the_ledger(
    runtime: Runtime, proposed: dict[str, int], printer: LetterPrinter, tmp_path: Path
) -> None:
    account_id = proposed["cn"]
    case_id = proposed[account_id]
    packet = build_packet_bytes(runtime, case_id, printer=printer).content
    with runtime.engine.connect() as c:
        account = c.execute(select(ACCOUNT).where(ACCOUNT.c.id == account_id)).one()
        schedule = c.execute(
            select(*(INSTALMENT.c[k] for k in INSTALMENT_COLUMNS))
            .where(INSTALMENT.c.account_id == account_id)
            .order_by(INSTALMENT.c.seq)
        ).all()
        payments = c.execute(
            select(PAYMENT.c.external_id, PAYMENT.c.paid_on, PAYMENT.c.amount_minor).where(
                PAYMENT.c.account_id == account_id
            )
        ).all()
        messages = c.execute(
            select(OUTBOX.c.as_of, OUTBOX.c.channel, OUTBOX.c.template_id, OUTBOX.c.status)
            .where(OUTBOX.c.account_id == account_id)
            .order_by(OUTBOX.c.as_of, OUTBOX.c.id)
        ).all()

    def money(minor: int) -> str:
        return str(to_decimal(minor, "CNY"))

    assert [
        (int(r["seq"]), r["due_on"], r["amount_due"], r["amount_paid"], r["paid_on"] or None)
        for r in rows(packet, "03-schedule.csv")
    ] == [
        (
            s.seq,
            s.due_on.isoformat(),
            money(s.amount_due_minor),
            money(s.amount_paid_minor),
            s.paid_on.isoformat() if s.paid_on else None,
        )
        for s in schedule
    ]
    assert [
        (r["reference"], r["paid_on"], r["amount"]) for r in rows(packet, "03-payments.csv")
    ] == [(p.external_id, p.paid_on.isoformat(), money(p.amount_minor)) for p in payments]
    assert [
        (r["date"], r["channel"], r["template_id"], r["status"])
        for r in rows(packet, "04-communications.csv")
    ] == [(m.as_of.isoformat(), m.channel, m.template_id, m.status) for m in messages]
    manifest = json.loads(read(packet, "manifest.json"))
    balance = (
        account.principal_minor
        + account.interest_minor
        + account.fees_minor
        + account.penalty_minor
    )
    assert Decimal(manifest["about"]["claim_total"]) == to_decimal(balance, "CNY")
    claim = pdftotext(read(packet, "02-statement-of-claim.pdf"), tmp_path)
    for minor in (account.principal_minor, balance):
        assert f"¥{to_decimal(minor, 'CNY'):,}" in claim


def test_a_payment_after_the_claim_date_is_shown_and_deducted(
    runtime: Runtime, proposed: dict[str, int], printer: LetterPrinter, tmp_path: Path
) -> None:
    account_id = proposed["us"]
    with runtime.unit_of_work() as c:
        c.execute(
            PAYMENT.insert().values(
                external_id="P-late",
                account_id=account_id,
                amount_minor=1_000_00,
                paid_on=AS_OF + timedelta(days=2),
                method="card",
            )
        )
    packet = build_packet_bytes(runtime, proposed[account_id], printer=printer).content
    claim = pdftotext(read(packet, "02-statement-of-claim.pdf"), tmp_path)
    assert "$8,000.00" in claim and "$1,000.00" in claim and "$7,000.00" in claim
    assert rows(packet, "03-payments.csv")[-1]["after_claim_date"] == "yes"


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        (
            "cn",
            {
                "01-cover-sheet.pdf": [
                    "案件材料",
                    "待审批",
                    "王伟",
                    "¥20,000.00",
                    "诉讼时效届满日",
                ],
                "02-statement-of-claim.pdf": ["诉讼请求金额说明", "本金", "罚息", "金额计算方法"],
                "03-account-statement.pdf": ["账户对账单", "还款计划", "逾期", "还款记录"],
                "04-communication-history.pdf": ["催收通知记录", "信函", "短信", "已送达", "★"],
                "06-customer-identity.pdf": ["当事人身份信息", "王伟", "+8613812345678"],
            },
        ),
        (
            "us",
            {
                "01-cover-sheet.pdf": ["Case packet", "proposed", "Ann Lee", "$8,000.00"],
                "02-statement-of-claim.pdf": [
                    "Statement of claim",
                    "Principal",
                    "Penalties",
                    "How the amounts were calculated",
                ],
                "03-account-statement.pdf": ["Account statement", "overdue", "Payments"],
                "04-communication-history.pdf": [
                    "Communication history",
                    "letter",
                    "sms",
                    "delivered",
                    "★",
                ],
                "06-customer-identity.pdf": ["Customer identity", "Ann Lee", "1 Main St"],
            },
        ),
    ],
)
def test_documents_render_in_the_customer_locale(
    runtime: Runtime,
    proposed: dict[str, int],
    printer: LetterPrinter,
    tmp_path: Path,
    which: str,
    expected: dict[str, list[str]],
) -> None:
    built = build_packet_bytes(runtime, proposed[proposed[which]], printer=printer)
    assert built.locale == ("zh-CN" if which == "cn" else "en-US")
    for name, phrases in expected.items():
        text = pdftotext(read(built.content, name), tmp_path)
        for phrase in phrases:
            assert phrase in text, (name, phrase)


def test_the_packet_follows_the_case(
    runtime: Runtime, proposed: dict[str, int], printer: LetterPrinter, tmp_path: Path
) -> None:
    case_id = proposed[proposed["us"]]
    before = build_packet_bytes(runtime, case_id, printer=printer)
    with runtime.unit_of_work() as c:
        transition_case(c, case_id, "approved", user="ana", note="approved for filing", on=AS_OF)
    after = build_packet_bytes(runtime, case_id, printer=printer)
    assert after.sha256 != before.sha256
    cover = pdftotext(read(after.content, "01-cover-sheet.pdf"), tmp_path)
    assert "approved for filing" in cover and "ana" in cover


def test_verify_catches_a_changed_file(
    runtime: Runtime, proposed: dict[str, int], printer: LetterPrinter, tmp_path: Path
) -> None:
    result = build_case_packet(runtime, proposed[proposed["cn"]], tmp_path, printer=printer)
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(result.path) as old, zipfile.ZipFile(tampered, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            if info.filename == "03-payments.csv":
                data = data.replace(b"20.00", b"2000.00")
            new.writestr(info, data)
    check = verify_packet(tampered)
    assert (check.ok, check.changed) == (False, ["03-payments.csv"])


def test_a_customer_without_an_address_or_in_another_locale(
    runtime: Runtime, printer: LetterPrinter, tmp_path: Path
) -> None:
    store = documents(runtime)
    with runtime.unit_of_work() as c:
        account = add_eligible(
            c,
            store,
            jurisdiction="US",
            balance_minor=8_000_00,
            locale="es-US",
            address_line1=None,
            city=None,
            postal_code=None,
        )
    run_legal_escalation(runtime, AS_OF)
    (case,) = all_cases(runtime)
    built = build_packet_bytes(runtime, case["id"], printer=printer)
    assert (built.locale, case["account_id"]) == ("en-US", account)
    identity = pdftotext(read(built.content, "06-customer-identity.pdf"), tmp_path)
    assert "not recorded" in identity
