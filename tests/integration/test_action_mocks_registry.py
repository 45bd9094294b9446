"""file-registry: the registry files' exact content, exactly once per key, pluggable formats."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import pytest

from adapters.actions import (
    PAYLOADS,
    ActionKind,
    ActionRequest,
    ActionResult,
    FileRegistryAdapter,
    FileRegistryOptions,
    InvalidActionRequest,
    RegistryFiles,
    RegistryFormat,
    RegistryLine,
    read_registry,
)
from adapters.actions.credit_registry import CsvRegistryFormat, _formats, register_registry_format
from adapters.base import SendOutcome
from adapters.registry import build_action_adapter
from dunning.config.actions import ActionsConfig

REPORTED = date(2026, 11, 23)
CORRECTED = date(2026, 12, 1)
HEADER = (
    "record_type,line_id,report_date,account_ref,customer_ref,customer_name,opened_on,currency,"
    "balance_minor,overdue_minor,dpd,status,corrects,reason\n"
)


def report(key: str = "rep-1", account: str = "ACC-1", **change: Any) -> ActionRequest:
    payload = {
        "report_date": "2026-11-23",
        "customer_ref": "CUS-1",
        "customer_name": '王芳, "小芳"',
        "currency": "CNY",
        "balance_minor": 2_000_000,
        "overdue_minor": 150_000,
        "dpd": 75,
        "opened_on": "2025-01-10",
        **change,
    }
    return ActionRequest(key, ActionKind.REGISTRY_REPORT, account, REPORTED, payload)


def correction(
    reference: str = "2026-11-23/rep-1", key: str = "cor-1", account: str = "ACC-1", **change: Any
) -> ActionRequest:
    payload = {
        "report_date": "2026-12-01",
        "customer_ref": "CUS-1",
        "report_reference": reference,
        "status": "current",
        "reason": "cured",
        **change,
    }
    return ActionRequest(key, ActionKind.REGISTRY_CORRECTION, account, CORRECTED, payload)


def perform(adapter: FileRegistryAdapter, batch: Sequence[ActionRequest]) -> list[ActionResult]:
    async def go() -> list[ActionResult]:
        async with adapter:
            return await adapter.perform(batch)

    return asyncio.run(go())


def registry(directory: Path, **options: Any) -> FileRegistryAdapter:
    return FileRegistryAdapter(directory, FileRegistryOptions(**options))


def test_report_and_correction_csv_content(tmp_path: Path) -> None:
    (reported,) = perform(registry(tmp_path), [report()])
    assert reported == ActionResult("rep-1", SendOutcome.ACCEPTED, reference="2026-11-23/rep-1")
    (corrected,) = perform(registry(tmp_path), [correction(reported.reference or "")])
    assert corrected == ActionResult("cor-1", SendOutcome.ACCEPTED, reference="2026-12-01/cor-1")

    assert (tmp_path / "delinquency-2026-11-23.csv").read_bytes().decode("utf-8") == (
        HEADER
        + 'REPORT,rep-1,2026-11-23,ACC-1,CUS-1,"王芳, ""小芳""",2025-01-10,CNY,2000000,150000,75,'
        "delinquent,,\n"
    )
    assert (tmp_path / "delinquency-2026-12-01.csv").read_text(encoding="utf-8") == (
        HEADER + "CORRECTION,cor-1,2026-12-01,ACC-1,CUS-1,,,,,,,current,2026-11-23/rep-1,cured\n"
    )
    # Nothing but the files and the lock: temp files were renamed into place.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock",
        "delinquency-2026-11-23.csv",
        "delinquency-2026-12-01.csv",
    ]


def test_report_and_correction_jsonl_content(tmp_path: Path) -> None:
    adapter = registry(tmp_path, format="jsonl")
    perform(adapter, [report(opened_on=None), correction()])
    assert (tmp_path / "delinquency-2026-11-23.jsonl").read_text(encoding="utf-8") == (
        '{"record_type":"REPORT","line_id":"rep-1","report_date":"2026-11-23",'
        '"account_ref":"ACC-1","customer_ref":"CUS-1","customer_name":"王芳, \\"小芳\\"",'
        '"opened_on":null,"currency":"CNY","balance_minor":2000000,"overdue_minor":150000,'
        '"dpd":75,"status":"delinquent","corrects":null,"reason":null}\n'
    )
    assert (tmp_path / "delinquency-2026-12-01.jsonl").read_text(encoding="utf-8") == (
        '{"record_type":"CORRECTION","line_id":"cor-1","report_date":"2026-12-01",'
        '"account_ref":"ACC-1","customer_ref":"CUS-1","customer_name":null,"opened_on":null,'
        '"currency":null,"balance_minor":null,"overdue_minor":null,"dpd":null,'
        '"status":"current","corrects":"2026-11-23/rep-1","reason":"cured"}\n'
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_second_write_of_a_key_adds_no_line(tmp_path: Path, fmt: str) -> None:
    (first,) = perform(registry(tmp_path, format=fmt), [report()])
    path = tmp_path / f"delinquency-2026-11-23.{fmt}"
    before = path.read_bytes()
    # Another adapter instance on the same directory, the same key twice in one batch too.
    again = perform(registry(tmp_path, format=fmt), [report(), report("rep-2", "ACC-2"), report()])
    assert again[0] == ActionResult("rep-1", SendOutcome.ACCEPTED, first.reference, duplicate=True)
    assert again[2] == again[0]
    assert again[1] == ActionResult("rep-2", SendOutcome.ACCEPTED, reference="2026-11-23/rep-2")
    assert path.read_bytes().startswith(before)
    assert [line.line_id for line in read_registry(tmp_path, fmt)] == ["rep-1", "rep-2"]


def test_concurrent_writers_never_lose_or_repeat_a_line(tmp_path: Path) -> None:
    def write(worker: int) -> None:
        batch = [report(f"rep-{n}", f"ACC-{n}") for n in range(worker, 60, 3)]
        batch += [report(f"rep-{n}", f"ACC-{n}") for n in range(0, 60, 7)]  # shared keys
        perform(registry(tmp_path, fsync=False), batch)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [line.line_id for line in read_registry(tmp_path)]
    assert sorted(ids) == sorted(f"rep-{n}" for n in range(60))


def test_a_correction_must_name_a_report_line_of_its_account(tmp_path: Path) -> None:
    perform(registry(tmp_path), [report()])
    results = perform(
        registry(tmp_path),
        [
            correction("2026-11-23/rep-404", key="c1"),
            correction("2026-11-30/rep-1", key="c2"),
            correction("rep-1", key="c3"),
            correction(key="c4", account="ACC-2"),
        ],
    )
    assert [r.outcome for r in results] == [SendOutcome.REJECTED] * 4
    assert [r.reason for r in results] == [
        "unknown_report: report_reference names no report line",
        "unknown_report: report_reference names no report line",
        "invalid_field: report_reference must be a line reference, YYYY-MM-DD/<line id>",
        "account_mismatch: the report line is about another account",
    ]
    assert not (tmp_path / "delinquency-2026-12-01.csv").exists()


def test_a_report_and_its_correction_in_one_batch(tmp_path: Path) -> None:
    same_day = correction(report_date="2026-11-23")
    results = perform(registry(tmp_path), [report(), same_day])
    assert [r.reference for r in results] == ["2026-11-23/rep-1", "2026-11-23/cor-1"]
    lines = RegistryFiles(tmp_path).read(REPORTED)
    assert [(line.record_type, line.corrects) for line in lines] == [
        ("REPORT", None),
        ("CORRECTION", "2026-11-23/rep-1"),
    ]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"report_date": "23/11/2026"}, "invalid_field: report_date must be a date, YYYY-MM-DD"),
        ({"currency": "RMB1"}, "invalid_field: currency must be an ISO 4217 code"),
        ({"dpd": -3}, "invalid_field: dpd must be a whole number of days, 0 or more"),
        (
            {"customer_name": "Ann\nLee"},
            "invalid_field: customer_name must not contain control characters",
        ),
        (
            {"balance_minor": 12.5},
            "invalid_field: balance_minor must be a whole number of minor units, 0 or more",
        ),
    ],
)
def test_invalid_reports_are_rejected_and_write_nothing(
    tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    (result,) = perform(registry(tmp_path), [report(**change)])
    assert result == ActionResult("rep-1", SendOutcome.REJECTED, reason=reason)
    assert read_registry(tmp_path) == []


def test_an_extra_payload_key_is_refused(tmp_path: Path) -> None:
    assert set(report().payload) == set(PAYLOADS[ActionKind.REGISTRY_REPORT])
    assert set(correction().payload) == set(PAYLOADS[ActionKind.REGISTRY_CORRECTION])
    with pytest.raises(InvalidActionRequest, match="unexpected key\\(s\\) phone"):
        perform(registry(tmp_path), [report(phone="+8613800138000")])
    assert not tmp_path.joinpath("delinquency-2026-11-23.csv").exists()


def test_a_file_in_another_format_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "delinquency-2026-11-23.csv"
    path.write_text("id;name\n1;x\n", encoding="utf-8")
    (result,) = perform(registry(tmp_path), [report()])
    assert result.outcome == SendOutcome.RETRY
    assert "header" in (result.reason or "")
    assert path.read_text(encoding="utf-8") == "id;name\n1;x\n"


def test_built_from_config_it_writes_under_the_state_dir(tmp_path: Path) -> None:
    adapter = build_action_adapter("registry", ActionsConfig(), tmp_path)
    assert isinstance(adapter, FileRegistryAdapter)
    perform(adapter, [report()])
    assert (tmp_path / "registry" / "delinquency-2026-11-23.csv").exists()
    (line,) = read_registry(tmp_path / "registry")
    assert line == RegistryLine(
        record_type="REPORT",
        line_id="rep-1",
        report_date=REPORTED,
        account_ref="ACC-1",
        customer_ref="CUS-1",
        customer_name='王芳, "小芳"',
        opened_on=date(2025, 1, 10),
        currency="CNY",
        balance_minor=2_000_000,
        overdue_minor=150_000,
        dpd=75,
        status="delinquent",
        corrects=None,
        reason=None,
    )


class SemicolonFormat(CsvRegistryFormat):
    """A plug-in format: the CSV fields, written with semicolons for a registry that wants them."""

    name: ClassVar[str] = "test-semicolon"
    suffix: ClassVar[str] = ".txt"

    def dumps(self, lines: Sequence[RegistryLine]) -> bytes:
        return super().dumps(lines).replace(b",", b";")

    def loads(self, data: bytes) -> list[RegistryLine]:
        return super().loads(data.replace(b";", b","))


def test_formats_are_pluggable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Registration is process-wide: register into a copy that the test throws away.
    monkeypatch.setattr(_formats, "_FORMATS", dict(_formats._FORMATS))
    by_path = f"{__name__}:SemicolonFormat"
    perform(registry(tmp_path / "a", format=by_path), [report(customer_name="Ann Lee")])
    assert (tmp_path / "a" / "delinquency-2026-11-23.txt").read_text().startswith("record_type;")
    register_registry_format(SemicolonFormat)
    perform(registry(tmp_path / "b", format="test-semicolon"), [report(customer_name="Ann Lee")])
    assert isinstance(RegistryFiles(tmp_path / "b", "test-semicolon").format, RegistryFormat)
    assert [line.line_id for line in read_registry(tmp_path / "b", "test-semicolon")] == ["rep-1"]
    with pytest.raises(ValueError, match="no registry format 'xml'; formats: csv, jsonl"):
        FileRegistryOptions(format="xml")


def test_the_registry_format_examples_are_what_the_adapter_writes(
    repo_dir: Path, tmp_path: Path
) -> None:
    text = (repo_dir / "docs" / "registry-format.md").read_text(encoding="utf-8")
    documented = re.findall(r"```csv\n(.*?)```", text, flags=re.DOTALL) + re.findall(
        r"```json\n(.*?)```", text, flags=re.DOTALL
    )
    batch = [report(), correction()]
    written = []
    for fmt in ("csv", "jsonl"):
        perform(registry(tmp_path / fmt, format=fmt), batch)
        for day in ("2026-11-23", "2026-12-01"):
            written.append((tmp_path / fmt / f"delinquency-{day}.{fmt}").read_text("utf-8"))
    assert documented == written
