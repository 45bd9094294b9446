"""`dunning run legal`, `dunning legal run` and `dunning cases ...` from the command line, and the
legal-escalation Prefect flow."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select

from dunning.bootstrap import Runtime
from dunning.db.outreach_models import Run
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
