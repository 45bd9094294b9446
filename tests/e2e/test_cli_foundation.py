"""The CLI end to end: demo, imports, config check, errors and JSON output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import invoke, write_csv

pytestmark = pytest.mark.usefixtures("env")


def test_demo_seed_and_tiers_json(capsys: pytest.CaptureFixture[str]) -> None:
    result = invoke(capsys, "demo", "seed", "--accounts", "400", "--as-of", "2026-11-23", "--json")
    assert result.code == 0, result.err
    assert result.json() == {
        "customers": 400,
        "accounts": 400,
        "instalments": 2865,
        "payments": 36,
        "promises": 18,
        "skipped": 0,
        "as_of": "2026-11-23",
    }
    tiers = invoke(capsys, "accounts", "tiers", "--as-of", "2026-11-23", "--json").json()
    # The default seed (42) draws the same 400 accounts every time: 340 of them overdue.
    assert [
        (r["tier"], r["jurisdiction"], r["accounts"], r["overdue"]) for r in tiers["tiers"]
    ] == [
        ("early", "CN", 97, "520651.84"),
        ("early", "US", 86, "174989.23"),
        ("middle", "CN", 39, "363522.44"),
        ("middle", "US", 39, "150083.69"),
        ("late", "CN", 46, "638083.83"),
        ("late", "US", 33, "181405.02"),
    ]
    assert tiers["as_of"] == "2026-11-23"


def test_import_rejects_bad_file_with_one_line_and_exit_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "customers.csv",
        ["external_id", "name", "locale", "phone"],
        [["C1", "Ann", "en-US", "+13125551234"], ["C2", "Bob", "en-US", "+1999"]],
    )
    result = invoke(capsys, "import", "customers", str(path))
    assert result.code == 1
    assert "customers.csv: rejected, nothing was written" in result.err
    assert "row 3: phone: is not a valid number" in result.err
    assert "Traceback" not in result.err
    good = write_csv(
        tmp_path / "ok.csv", ["external_id", "name", "locale"], [["C1", "Ann", "en-US"]]
    )
    result = invoke(capsys, "import", "customers", str(good), "--json")
    assert result.code == 0 and result.json()["inserted"] == 1


def test_config_check_names_file_and_key(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    repo_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = tmp_path / "program"
    shutil.copytree(repo_dir / "config", project / "config")
    shutil.copytree(repo_dir / "templates", project / "templates")
    shutil.copy(repo_dir / "dunning.yaml", project / "dunning.yaml")
    assert invoke(capsys, "--project-dir", str(project), "config", "check").code == 0
    strategy = project / "config" / "strategy.yaml"
    strategy.write_text(strategy.read_text().replace("batch_size: 5000", "batch_size: -3"))
    result = invoke(capsys, "--project-dir", str(project), "config", "check", "--json")
    assert result.code == 1
    problems = result.json()["problems"]
    assert problems[0]["file"] == "config/strategy.yaml"
    assert problems[0]["key"] == "batch_size"
    (project / "config" / "stray.yaml").write_text("a: 1\n")
    result = invoke(capsys, "--project-dir", str(project), "config", "check")
    assert "config/stray.yaml" in result.out and "unknown config file" in result.out


def test_unknown_project_dir_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = invoke(capsys, "--project-dir", str(tmp_path), "accounts", "tiers")
    assert result.code == 1
    assert "is not a program directory" in result.err


def test_console_script_runs_the_demo_month(tmp_path: Path) -> None:
    """README command 1's demo through the installed `dunning` entry point (in-process here;
    the Prefect path is tested in test_daily_outreach_flow.py)."""
    exe = Path(sys.executable).parent / "dunning"
    args = [str(exe), "demo", "--accounts", "3000", "--as-of", "2026-11-23", "--in-process"]
    completed = subprocess.run(
        [*args, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    demo = json.loads(completed.stdout)
    # Seed 42's month. Which SMS and push messages go depends on the wall clock (the contact
    # windows open at the hour this runs), so only their rerun is compared below; everything
    # here is the same at any hour and on either backend.
    lifecycle = demo["daily_outreach"]["lifecycle"]
    assert lifecycle["promises"] == {"kept": 1, "broken": 23}
    # The ids of the accounts whose promise is paid and whose freeze is cured, and the plan's.
    assert demo["events"] == {"promise_paid_account": 4, "cured_account": 1647, "plan": 1}
    assert demo["actions"] == {
        "agency_placement": {"done": 22, "held": 4},
        "credit_freeze": {"done": 24, "held": 2},
        "credit_restore": {"done": 1},  # the cure reversed the freeze
        "registry_report": {"done": 34, "held": 10},
    }
    state = Path(os.environ["DUNNING_STATE_DIR"])
    assert sorted(p.name for p in (state / "registry").glob("delinquency-*.csv")) == [
        "delinquency-2026-10-24.csv",
        "delinquency-2026-11-23.csv",
    ]
    # Through the sandbox's vendor APIs (config/channels.sandbox.yaml) one US final demand
    # letter, mailed through the mock Lob, is still in transit on the demo day: 10 cases, not
    # the 11 of the mock's own API (--gateways in-process).
    assert demo["legal"]["accounts"]["by_outcome"] == {"opened": 10, "refused": 601}
    assert demo["packet"]["verified"] is True
    assert demo["gateway_accepted"]["letter"] == 37  # letters have no contact window
    # The whole month again: nothing new is sent, no second case is opened.
    again = subprocess.run(
        [*args, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
        check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads(again.stdout)
    assert rerun["daily_outreach"]["this_run"]["new_messages"] == 0
    assert rerun["legal"]["accounts"]["by_outcome"]["opened"] == 0
    assert rerun["gateway_accepted"] == demo["gateway_accepted"]


def test_bad_parameters_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = invoke(capsys, "run", "daily", "--as-of", "someday")
    assert result.code == 2
    assert "Invalid value for '--as-of'" in result.err and "unexpected" not in result.err
    assert invoke(capsys, "outbox", "list", "--limit", "0").code == 2
    assert invoke(capsys, "--help").code == 0
