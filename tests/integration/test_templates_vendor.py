"""`dunning templates lint` proves each CN SMS template's Jinja text equal to the text registered
with Aliyun (templates/registered/aliyun.yaml) filled with its rendered vendor.aliyun.params;
bad vendor blocks are refused naming the file and key; the approval covers the vendor block."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from dunning.rendering import TemplateStore, placeholders
from tests.helpers import invoke

REPO = Path(__file__).resolve().parents[2]
CN_ID = "sms/early/reminder.zh-CN"
CN_FILE = "templates/messages/sms/early/reminder.zh-CN.txt"
CODE = "SMS_480216001"


@pytest.fixture
def program(tmp_path: Path, env: Path) -> Path:
    """A copy of the repository's program directory, with its approvals and registered texts."""
    root = tmp_path / "program"
    root.mkdir()
    shutil.copy(REPO / "dunning.yaml", root / "dunning.yaml")
    shutil.copytree(REPO / "config", root / "config")
    shutil.copytree(REPO / "templates", root / "templates")
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def lint_json(capsys: pytest.CaptureFixture[str], program: Path) -> list[dict[str, object]]:
    result = invoke(capsys, "--project-dir", str(program), "templates", "lint", "--json")
    assert result.code == 1, result.out
    findings: list[dict[str, object]] = result.json()["findings"]
    return findings


def test_every_cn_sms_template_names_a_registered_aliyun_text(
    capsys: pytest.CaptureFixture[str], env: Path
) -> None:
    store = TemplateStore(REPO / "templates/messages")
    registered = yaml.safe_load((REPO / "templates/registered/aliyun.yaml").read_text("utf-8"))
    cn_sms = [
        ref
        for ref in store.all()
        if ref.channel == "sms" and (ref.metadata.jurisdiction == "CN" or ref.locale == "zh-CN")
    ]
    assert len(cn_sms) == 7
    for ref in cn_sms:
        assert ref.metadata.vendor is not None and ref.metadata.vendor.aliyun is not None, ref.id
        block = ref.metadata.vendor.aliyun
        text = registered["templates"][block.template_code]["text"]
        assert sorted(placeholders(text)) == sorted(block.params), ref.id
    others = [ref for ref in store.all() if ref not in cn_sms]
    assert all(ref.metadata.vendor is None for ref in others)
    result = invoke(capsys, "templates", "lint")
    assert result.code == 0, result.out + result.err
    assert "0 error(s), 0 warning(s)" in result.out


def test_a_word_changed_in_the_template_fails_lint_naming_file_and_code(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    edit(program / CN_FILE, "如已还款请忽略", "如已还款请勿略")
    (finding,) = lint_json(capsys, program)
    assert finding["template"] == CN_ID and finding["path"] == CN_FILE
    assert finding["rule"] == "vendor.drift" and finding["line"] == 11  # template_code
    message = str(finding["message"])
    assert message.startswith(f"{CODE}: with the sample account at DPD ")
    assert "templates/registered/aliyun.yaml" in message
    # Counted from the 【邓宁示范贷】 that opens the text.
    assert "they differ from character 87: registered …'还款，如已还款请忽略。" in message
    assert "but the template …'还款，如已还款请勿略。" in message
    text = invoke(capsys, "--project-dir", str(program), "templates", "lint", CN_ID)
    assert text.code == 1
    assert f"{CN_ID}:11  error  vendor.drift  {CODE}: " in text.out
    assert "lint found 1 error(s)" in text.err


def test_a_word_changed_in_the_registered_text_fails_lint(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    edit(program / "templates/registered/aliyun.yaml", "应还${amount}", "应付${amount}")
    (finding,) = lint_json(capsys, program)
    assert (finding["template"], finding["rule"]) == (CN_ID, "vendor.drift")
    assert str(finding["message"]).startswith(f"{CODE}: ")
    assert "registered …'的借款已逾期，应付¥" in str(finding["message"])


def test_a_changed_signature_fails_lint(capsys: pytest.CaptureFixture[str], program: Path) -> None:
    edit(program / "templates/registered/aliyun.yaml", "sign_name: 邓宁示范贷", "sign_name: 邓宁贷")
    findings = lint_json(capsys, program)
    assert len(findings) == 7
    assert {f["rule"] for f in findings} == {"vendor.drift"}
    assert all("differ from character 4" in str(f["message"]) for f in findings)


@pytest.mark.parametrize(
    ("old", "new", "rule", "line", "message"),
    [
        pytest.param(
            f"template_code: {CODE}",
            "template_code: SMS_999",
            "vendor.registered",
            11,
            "vendor.aliyun.template_code: SMS_999 is not in templates/registered/aliyun.yaml",
            id="code-not-registered",
        ),
        pytest.param(
            '      pay_by: "{{ pay_by | date }}"\n',
            "",
            "vendor.registered",
            12,
            f"vendor.aliyun.params: the registered text of {CODE} uses ${{pay_by}}, which "
            "vendor.aliyun.params does not declare",
            id="param-used-not-declared",
        ),
        pytest.param(
            '      pay_by: "{{ pay_by | date }}"\n',
            '      pay_by: "{{ pay_by | date }}"\n      when: "{{ as_of | date }}"\n',
            "vendor.registered",
            16,
            f"vendor.aliyun.params.when: declared, but the registered text of {CODE} does not "
            "use ${when}",
            id="param-declared-not-used",
        ),
    ],
)
def test_params_and_code_must_match_the_registered_text(
    capsys: pytest.CaptureFixture[str],
    program: Path,
    old: str,
    new: str,
    rule: str,
    line: int,
    message: str,
) -> None:
    edit(program / CN_FILE, old, new)
    findings = [f for f in lint_json(capsys, program) if f["rule"] == rule]
    assert [(f["template"], f["line"], f["message"]) for f in findings] == [(CN_ID, line, message)]


def test_a_param_reading_an_undeclared_variable_fails_lint(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    edit(program / CN_FILE, '{{ customer.greeting_name }}"', '{{ customer.name }}"')
    findings = lint_json(capsys, program)
    assert ("vars.undeclared", 13) in {(f["rule"], f["line"]) for f in findings}


def test_a_param_that_fails_to_render_fails_lint(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    edit(program / CN_FILE, '"{{ amount.overdue | money }}"', '"{{ amount.overdue | date }}"')
    (finding,) = lint_json(capsys, program)
    assert (finding["template"], finding["rule"], finding["line"]) == (CN_ID, "vendor.render", 12)
    assert str(finding["message"]).startswith(
        "with the sample account at DPD 7: vendor.aliyun.params.amount: "
    )


def test_without_the_registered_file_lint_fails(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    (program / "templates/registered/aliyun.yaml").unlink()
    findings = lint_json(capsys, program)
    assert len(findings) == 7
    assert {(f["rule"], f["message"]) for f in findings if f["template"] == CN_ID} == {
        (
            "vendor.registered",
            f"vendor.aliyun.template_code: {CODE} is not registered: there is no "
            "templates/registered/aliyun.yaml",
        )
    }


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        pytest.param(
            f"template_code: {CODE}",
            "template_code: SMS-480216001",
            "vendor.aliyun.template_code: String should match pattern '^SMS_\\d+$'",
            id="code-form",
        ),
        pytest.param(
            '      name: "{{ customer.greeting_name }}"',
            "      name: 5",
            "vendor.aliyun.params.name: Input should be a valid string",
            id="non-string-param",
        ),
        pytest.param(
            f"template_code: {CODE}",
            f"template_code: {CODE}\n    sign_name: x",
            "vendor.aliyun.sign_name: Extra inputs are not permitted",
            id="unknown-key",
        ),
        pytest.param(
            "vendor:\n  aliyun:",
            "vendor:\n  twilio: {}\n  aliyun:",
            "vendor.twilio: Extra inputs are not permitted",
            id="unknown-vendor",
        ),
    ],
)
def test_bad_vendor_blocks_are_refused_naming_file_and_key(
    capsys: pytest.CaptureFixture[str], program: Path, old: str, new: str, reason: str
) -> None:
    edit(program / CN_FILE, old, new)
    for command in (("templates", "lint"), ("templates", "status")):
        result = invoke(capsys, "--project-dir", str(program), *command)
        assert result.code == 1
        assert f"{CN_FILE}: front matter: {reason}" in result.err


def test_a_vendor_block_on_a_push_template_is_refused(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    path = "templates/messages/push/early/reminder.zh-CN.txt"
    edit(
        program / path,
        "\n---#}",
        "\nvendor:\n  aliyun:\n    template_code: SMS_1\n---#}",
    )
    result = invoke(capsys, "--project-dir", str(program), "templates", "lint")
    assert result.code == 1
    assert (
        f"{path}: front matter: vendor.aliyun: Aliyun SMS templates are sms templates" in result.err
    )


def test_a_bad_registered_file_is_refused_naming_file_and_key(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    edit(program / "templates/registered/aliyun.yaml", f"  {CODE}:\n", "  SMS-1:\n")
    result = invoke(capsys, "--project-dir", str(program), "templates", "lint")
    assert result.code == 1
    assert "templates/registered/aliyun.yaml" in result.err
    assert "templates.SMS-1" in result.err


def test_config_check_names_a_bad_registered_file(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    project = ("--project-dir", str(program))
    assert invoke(capsys, *project, "config", "check").code == 0
    edit(
        program / "templates/registered/aliyun.yaml",
        "    name: 逾期提醒（早期）\n",
        "    note: x\n",
    )
    result = invoke(capsys, *project, "config", "check", "--json")
    assert result.code == 1
    assert [(p["file"], p["key"], p["reason"]) for p in result.json()["problems"]] == [
        (
            "templates/registered/aliyun.yaml",
            f"templates.{CODE}.note",
            "Extra inputs are not permitted",
        )
    ]


def test_the_approval_covers_the_vendor_block(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    project = ("--project-dir", str(program))
    status = invoke(capsys, *project, "templates", "status", "--check")
    assert status.code == 0, status.out  # the shipped templates are approved as they are
    edit(program / CN_FILE, f"template_code: {CODE}", "template_code: SMS_480216009")
    edit(program / "templates/registered/aliyun.yaml", f"  {CODE}:", "  SMS_480216009:")
    assert invoke(capsys, *project, "templates", "lint").code == 0
    status = invoke(capsys, *project, "templates", "status", "--json")
    states = {item["template"]: item for item in status.json()["templates"]}
    assert states[CN_ID]["state"] == "changed"
    assert (
        f"-    template_code: {CODE}\n+    template_code: SMS_480216009\n"
        in (states[CN_ID]["diff"])
    )
    assert [t for t, item in states.items() if item["state"] != "approved"] == [CN_ID]
    # A changed parameter is a change too.
    edit(program / CN_FILE, "template_code: SMS_480216009", f"template_code: {CODE}")
    edit(program / "templates/registered/aliyun.yaml", "  SMS_480216009:", f"  {CODE}:")
    assert invoke(capsys, *project, "templates", "status", "--check").code == 0
    edit(program / CN_FILE, '{{ pay_by | date }}"', "{{ pay_by | date('long') }}\"")
    status = invoke(capsys, *project, "templates", "status", "--check")
    assert status.code == 1 and f"changed         {CN_ID}" in status.out
