"""The CLI end to end: demo, imports, config check, errors and JSON output."""

from __future__ import annotations

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
    assert result.json()["accounts"] == 400
    tiers = invoke(capsys, "accounts", "tiers", "--as-of", "2026-11-23", "--json").json()
    assert {row["tier"] for row in tiers["tiers"]} == {"early", "middle", "late"}
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
    assert "row 3: phone: phone is not a valid number" in result.err
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


def test_console_script_runs_the_demo(tmp_path: Path) -> None:
    """The installed `dunning` entry point, as README command 1 uses it."""
    exe = Path(sys.executable).parent / "dunning"
    completed = subprocess.run(
        [str(exe), "demo", "--accounts", "300", "--as-of", "2026-11-23"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "early" in completed.stdout and "CN" in completed.stdout


def test_bad_parameters_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    result = invoke(capsys, "run", "daily", "--as-of", "someday")
    assert result.code == 2
    assert "Invalid value for '--as-of'" in result.err and "unexpected" not in result.err
    assert invoke(capsys, "outbox", "list", "--limit", "0").code == 2
    assert invoke(capsys, "--help").code == 0
