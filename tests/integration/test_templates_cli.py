"""`dunning templates lint | approve | status` on a copy of the program directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import invoke

REPO = Path(__file__).resolve().parents[2]
SMS_ID = "sms/early/reminder.en-US"
SHIPPED = len(list((REPO / "templates/messages").glob("*/*/*.*.*")))


@pytest.fixture
def program(tmp_path: Path, env: Path) -> Path:
    """A copy of the repository's program directory, without approvals (with the registered
    Aliyun texts)."""
    root = tmp_path / "program"
    root.mkdir()
    shutil.copy(REPO / "dunning.yaml", root / "dunning.yaml")
    shutil.copytree(REPO / "config", root / "config")
    shutil.copytree(REPO / "templates/messages", root / "templates/messages")
    shutil.copytree(REPO / "templates/typst", root / "templates/typst")
    shutil.copytree(REPO / "templates/registered", root / "templates/registered")
    return root


def sms_path(root: Path) -> Path:
    return root / "templates/messages/sms/early/reminder.en-US.txt"


def test_lint_the_shipped_templates(capsys: pytest.CaptureFixture[str], env: Path) -> None:
    result = invoke(capsys, "templates", "lint")
    assert result.code == 0, result.out + result.err
    assert f"{SHIPPED} template(s): 0 error(s), 0 warning(s)" in result.out


def test_lint_reports_errors_and_exits_1(capsys: pytest.CaptureFixture[str], program: Path) -> None:
    path = sms_path(program)
    path.write_text(path.read_text().replace("Reply STOP to opt out", "Bye"), encoding="utf-8")
    result = invoke(capsys, "--project-dir", str(program), "templates", "lint", "--json")
    assert result.code == 1
    report = result.json()
    assert report["templates"] == SHIPPED and report["errors"] == 1 and report["warnings"] == 0
    (finding,) = report["findings"]
    assert finding == {
        "template": SMS_ID,
        "line": 12,
        "rule": "sms.opt_out",
        "severity": "error",
        "message": "no opt-out instruction: the US pack requires 'Reply STOP'",
        "path": "templates/messages/sms/early/reminder.en-US.txt",
    }
    text = invoke(capsys, "--project-dir", str(program), "templates", "lint", SMS_ID)
    assert text.code == 1
    assert f"{SMS_ID}:12  error  sms.opt_out" in text.out
    assert "1 template(s): 1 error(s), 0 warning(s)" in text.out
    other = invoke(
        capsys, "--project-dir", str(program), "templates", "lint", "sms/early/reminder.zh-CN"
    )
    assert other.code == 0


def test_lint_refuses_a_us_letter_on_a4(capsys: pytest.CaptureFixture[str], program: Path) -> None:
    pack = program / "config/compliance/US.yaml"
    pack.write_text(pack.read_text().replace("paper: us-letter", "paper: a4"), encoding="utf-8")
    result = invoke(capsys, "--project-dir", str(program), "templates", "lint", "--json")
    assert result.code == 1
    findings = result.json()["findings"]
    us_letters = sorted(p.stem for p in (program / "templates/messages/letter").glob("*/*.en-US.*"))
    assert len(findings) == len(us_letters) == 3
    assert {f["rule"] for f in findings} == {"letter.paper"}
    assert all(f["template"].endswith(".en-US") for f in findings)
    assert (
        "US letters go on us-letter paper, but the US pack lays them out on a4"
        in (findings[0]["message"])
    )


def test_lint_an_unknown_template(capsys: pytest.CaptureFixture[str], env: Path) -> None:
    result = invoke(capsys, "templates", "lint", "sms/early/nope.en-US")
    assert result.code == 1
    assert "'sms/early/nope.en-US' does not exist" in result.err


def test_approve_status_and_a_changed_template(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    project = ("--project-dir", str(program))
    status = invoke(capsys, *project, "templates", "status", "--check")
    assert status.code == 1
    assert f"0 approved, 0 changed, {SHIPPED} never approved" in status.out

    approved = invoke(
        capsys, *project, "templates", "approve", SMS_ID, "--reviewer", "ana.lee", "--note", "ok"
    )
    assert approved.code == 0, approved.err
    assert f"approved {SMS_ID}" in approved.out and "by ana.lee" in approved.out
    data = yaml.safe_load((program / "templates/approvals.yaml").read_text(encoding="utf-8"))
    entry = data["approvals"][SMS_ID]
    assert entry["reviewer"] == "ana.lee" and entry["note"] == "ok"
    assert entry["approved_at"].endswith("Z") and len(entry["content_hash"]) == 64
    assert entry["source"] == sms_path(program).read_text(encoding="utf-8")

    status = invoke(capsys, *project, "templates", "status", "--json")
    states = {item["template"]: item["state"] for item in status.json()["templates"]}
    assert states[SMS_ID] == "approved"
    assert list(states.values()).count("never approved") == SHIPPED - 1

    path = sms_path(program)
    path.write_text(path.read_text().replace("past due", "past-due"), encoding="utf-8")
    status = invoke(capsys, *project, "templates", "status")
    assert status.code == 0
    assert f"changed         {SMS_ID}  (ana.lee, " in status.out
    assert "-on your account is past due." in status.out
    assert "+on your account is past-due." in status.out
    assert f"0 approved, 1 changed, {SHIPPED - 1} never approved" in status.out
    item = next(
        i
        for i in invoke(capsys, *project, "templates", "status", "--json").json()["templates"]
        if i["template"] == SMS_ID
    )
    assert item["state"] == "changed" and "+on your account is past-due." in item["diff"]


def test_approve_refuses_lint_errors_unless_forced_with_a_note(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    project = ("--project-dir", str(program))
    path = sms_path(program)
    path.write_text(path.read_text().replace("Reply STOP to opt out", "Bye"), encoding="utf-8")
    refused = invoke(capsys, *project, "templates", "approve", SMS_ID, "--reviewer", "ana.lee")
    assert refused.code == 1
    assert "1 lint error(s) (sms.opt_out)" in refused.err
    assert not (program / "templates/approvals.yaml").exists()

    no_note = invoke(
        capsys, *project, "templates", "approve", SMS_ID, "--reviewer", "ana.lee", "--force"
    )
    assert no_note.code == 1 and "--force needs a --note" in no_note.err

    forced = invoke(
        capsys, *project, "templates", "approve", SMS_ID, "--reviewer", "ana.lee", "--force",
        "--note", "opt-out sent separately",
    )  # fmt: skip
    assert forced.code == 0
    assert "despite lint errors (sms.opt_out)" in forced.out
    status = invoke(capsys, *project, "templates", "status")
    assert "ana.lee, " in status.out and ", forced)" in status.out


def test_approve_needs_a_reviewer(capsys: pytest.CaptureFixture[str], program: Path) -> None:
    result = invoke(capsys, "--project-dir", str(program), "templates", "approve", SMS_ID)
    assert result.code != 0
    assert "reviewer" in result.err


@pytest.mark.parametrize(
    ("expression", "rules"),
    [
        ("customer[lender.name]", ["template.render", "vars.computed_key"]),
        ("amount.overdue[1]", ["template.render"]),
        ("[1][0]", []),
    ],
)
def test_subscripts_lint_preview_and_approve(
    capsys: pytest.CaptureFixture[str], program: Path, expression: str, rules: list[str]
) -> None:
    # Each of these ended lint, preview and approve with "unexpected RecursionError".
    shutil.rmtree(program / "templates/messages/letter")  # the gallery's PDFs take seconds
    project = ("--project-dir", str(program))
    path = sms_path(program)
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[9].startswith("Hi {{ customer.greeting_name }},")
    path.write_text(
        text.replace("Hi {{ customer.greeting_name }},", f"Hi {{{{ {expression} }}}},"),
        encoding="utf-8",
    )

    lint = invoke(capsys, *project, "templates", "lint", SMS_ID, "--json")
    assert "unexpected" not in lint.err
    findings = lint.json()["findings"]
    errors = [f for f in findings if f["severity"] == "error"]
    assert sorted(f["rule"] for f in errors) == rules
    assert all(f["line"] == 10 for f in errors)
    assert lint.code == (1 if rules else 0)
    assert "Dunning Demo Lender" not in lint.out  # the computed key's value is never shown

    gallery = invoke(capsys, *project, "templates", "preview", "--out", str(program / "gallery"))
    assert gallery.code == 0, gallery.err
    html = (program / "gallery/index.html").read_text(encoding="utf-8")
    for rule in rules:
        assert rule in html

    approved = invoke(
        capsys, *project, "templates", "approve", SMS_ID, "--reviewer", "ana.lee", "--force",
        "--note", "checked by hand",
    )  # fmt: skip
    assert approved.code == 0, approved.err
    if rules:
        assert f"despite lint errors ({', '.join(rules)})" in approved.out
    entry = yaml.safe_load((program / "templates/approvals.yaml").read_text(encoding="utf-8"))
    assert entry["approvals"][SMS_ID]["lint_errors"] == rules
