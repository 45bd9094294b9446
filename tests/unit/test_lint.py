"""Template lint: each rule with one template that passes and one that fails.

Every case writes one small template into a temporary templates directory and lints it with
the repository's policy packs and banned phrases (config/compliance/).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dunning.compliance import Finding, Linter, LintRules, has_errors, phrase_pattern
from dunning.config import BannedPhrases, Strategy, load_file
from dunning.config.packs import load_packs
from dunning.rendering import DEMO_LENDER, TemplateStore

REPO = Path(__file__).resolve().parents[2]

US_SMS_END = "This is a message from a debt collector. Reply STOP to opt out"
CN_SMS_START = "【{{ lender.sms_signature }}】"
LETTER_HEAD = '#import "letter.typ": *\n#show: letter.with(lang: "{lang}")\n'
US_DISCLOSURE = "This is a communication from a debt collector attempting to collect a debt.\n"
US_VALIDATION = "\n".join(
    f"{{{{ validation.{name} }}}}\n"
    for name in (
        "itemization_date",
        "amount_on_itemization_date",
        "interest_since",
        "fees_since",
        "payments_since",
        "current_amount",
        "dispute_by",
    )
)


@pytest.fixture(scope="module")
def rules() -> LintRules:
    strategy = load_file(REPO / "config/strategy.yaml", Strategy, REPO)
    return LintRules(
        packs=load_packs(REPO / "config", REPO),
        banned=load_file(REPO / "config/compliance/banned_phrases.yaml", BannedPhrases, REPO),
        tiers={tier.name: tier.dpd for tier in strategy.tiers},
    )


def write_template(
    root: Path,
    channel: str,
    body: str,
    *,
    variables: list[str],
    locale: str = "en-US",
    jurisdiction: str | None = None,
    tier: str = "early",
) -> str:
    ext = ".typ" if channel == "letter" else ".txt"
    template_id = f"{channel}/{tier}/reminder.{locale}"
    jurisdiction = jurisdiction or ("CN" if locale.startswith("zh") else "US")
    header = (
        "{#---\n"
        f"id: {template_id}\nchannel: {channel}\ntier: {tier}\nlocale: {locale}\n"
        f"jurisdiction: {jurisdiction}\npurpose: reminder\nvariables: [{', '.join(variables)}]\n"
        "---#}\n"
    )
    path = root / f"{template_id}{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body, encoding="utf-8")
    return template_id


def lint(
    tmp_path: Path, rules: LintRules, channel: str, body: str, **kwargs: object
) -> list[Finding]:
    # templates/messages and templates/typst (the layout letters import), as in a program.
    shutil.copytree(REPO / "templates/typst", tmp_path / "typst", dirs_exist_ok=True)
    messages = tmp_path / "messages"
    template_id = write_template(messages, channel, body, **kwargs)  # type: ignore[arg-type]
    store = TemplateStore(messages)
    return Linter(store, rules).lint(store.get(template_id))


def rule_ids(findings: list[Finding]) -> set[str]:
    return {finding.rule for finding in findings}


def only(findings: list[Finding], rule: str) -> list[Finding]:
    return [finding for finding in findings if finding.rule == rule]


# The front matter takes lines 1 to 9 (`variables` on line 8, `jurisdiction` on 6).
BODY = 10
VARIABLES = 8


# --- variables -------------------------------------------------------------------------------


def test_clean_sms_has_no_findings(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        "Hi {{ customer.greeting_name }}, {{ amount.overdue | money }} is past due.\n" + US_SMS_END,
        variables=["customer.greeting_name", "amount.overdue"],
    )
    assert findings == []


def test_undefined_variable(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        f"Hi,\nyou owe {{{{ customer.nickname }}}}. {US_SMS_END}",
        variables=["customer.nickname"],
    )
    undefined = only(findings, "vars.undefined")
    assert [(f.line, f.severity) for f in undefined] == [(VARIABLES, "error"), (BODY + 1, "error")]
    assert "customer.nickname" in undefined[0].message
    assert has_errors(findings)


def test_attributes_of_plain_values_are_defined(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        f"Hi {{{{ customer.greeting_name.upper() }}}}. {US_SMS_END}",
        variables=["customer.greeting_name"],
    )
    assert "vars.undefined" not in rule_ids(findings)


def test_undeclared_variable(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        f"Hi {{{{ customer.greeting_name }}}},\n{{{{ amount.total | money }}}}. {US_SMS_END}",
        variables=["customer.greeting_name"],
    )
    assert [(f.rule, f.line) for f in findings] == [("vars.undeclared", BODY + 1)]
    assert "amount.total" in findings[0].message


def test_declared_but_unused_is_a_warning(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        f"Hello. {US_SMS_END}",
        variables=["lender.phone"],
    )
    assert [(f.rule, f.severity, f.line) for f in findings] == [
        ("vars.unused", "warning", VARIABLES)
    ]
    assert not has_errors(findings)


def test_a_declared_parent_covers_its_children(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        f"{{{{ address.lines | join(' ') }}}} {{{{ address.country }}}}. {US_SMS_END}",
        variables=["address"],
    )
    assert findings == []


def test_a_key_computed_while_rendering(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        f"Hi {{{{ customer.greeting_name }}}},\n{{{{ customer[lender.name] }}}}. {US_SMS_END}",
        variables=["customer.greeting_name", "lender.name"],
    )
    computed = only(findings, "vars.computed_key")
    assert [(f.line, f.severity) for f in computed] == [(BODY + 1, "error")]
    assert computed[0].message.startswith("customer[...] picks what to show with a key computed")
    # The sample account has no such field: the render fails too, without showing the key.
    (render,) = only(findings, "template.render")
    assert render.line == BODY + 1 and "Dunning Demo Lender" not in render.message


def test_constant_subscripts_are_plain_reads(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        "{{ address.lines[0] }} {{ [1][0] }} {{ amount['overdue'] | money }}. " + US_SMS_END,
        variables=["address.lines", "amount.overdue"],
    )
    assert findings == []
    findings = lint(
        tmp_path,
        rules,
        "sms",
        f"{{{{ amount.overdue[1] }}}}. {US_SMS_END}",
        variables=["amount.overdue"],
    )
    assert [(f.rule, f.line) for f in findings] == [("template.render", BODY)]
    assert findings[0].message.endswith("undefined variable: a subscript finds no element")


# --- SMS ------------------------------------------------------------------------------------


def test_sms_encoding_warns_on_avoidable_ucs2(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        f"Hello.\nCan’t pay? Call us. {US_SMS_END}",
        variables=[],
    )
    assert [(f.rule, f.severity, f.line) for f in findings] == [
        ("sms.encoding", "warning", BODY + 1)
    ]
    assert "U+2019" in findings[0].message


def test_chinese_sms_is_ucs2_without_a_warning(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        f"{CN_SMS_START}您好，您的借款已逾期。回复TD退订",
        variables=["lender.sms_signature"],
        locale="zh-CN",
    )
    assert findings == []


def test_sms_segments_over_the_pack_limit(tmp_path: Path, rules: LintRules) -> None:
    long_text = "Please call us about your account. " * 9  # 315 characters: 3 parts
    findings = lint(tmp_path, rules, "sms", long_text + US_SMS_END, variables=[])
    segments = only(findings, "sms.segments")
    assert len(segments) == 1 and segments[0].severity == "error"
    assert "3 parts" in segments[0].message and "allows 2" in segments[0].message
    assert rule_ids(findings) == {"sms.segments"}


def test_sms_segments_counts_the_longest_sample(tmp_path: Path, rules: LintRules) -> None:
    # 289 characters at DPD 7 and 290 at the tier's last day, DPD 30: still two parts.
    text = "x" * 222 + " {{ dpd }} " + US_SMS_END
    findings = lint(tmp_path, rules, "sms", text, variables=["dpd"])
    assert findings == []
    text = "x" * 242 + " {{ dpd }} " + US_SMS_END  # 307 septets at DPD 30: three parts
    findings = lint(tmp_path, rules, "sms", text, variables=["dpd"])
    assert [f.rule for f in findings] == ["sms.segments"]
    assert "DPD 30" in findings[0].message


def test_sms_length_over_the_carrier_limit(tmp_path: Path, rules: LintRules) -> None:
    cn = rules.packs["CN"]
    lax = cn.model_copy(update={"sms": cn.sms.model_copy(update={"max_segments": 10})})
    relaxed = LintRules(packs={**rules.packs, "CN": lax}, banned=rules.banned, tiers=rules.tiers)
    ok = f"{CN_SMS_START}{'请' * 480}回复TD退订"  # 7 + 480 + 6 = 493 characters
    assert (
        lint(tmp_path, relaxed, "sms", ok, variables=["lender.sms_signature"], locale="zh-CN") == []
    )
    too_long = f"{CN_SMS_START}{'请' * 490}回复TD退订"
    findings = lint(
        tmp_path, relaxed, "sms", too_long, variables=["lender.sms_signature"], locale="zh-CN"
    )
    assert [f.rule for f in findings] == ["sms.length"]
    assert "503 characters" in findings[0].message and "allows 500" in findings[0].message


def test_sms_signature_is_required_in_china(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path, rules, "sms", "您好，您的借款已逾期。回复TD退订", variables=[], locale="zh-CN"
    )
    assert [(f.rule, f.line) for f in findings] == [("sms.signature", BODY)]
    wrong = "【别的名字】您好，您的借款已逾期。\n回复TD退订"
    findings = lint(tmp_path, rules, "sms", wrong, variables=[], locale="zh-CN")
    assert [(f.rule, f.line) for f in findings] == [("sms.signature", BODY)]
    assert "【邓宁示范贷】" in findings[0].message


def test_sms_opt_out_instruction(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(
        tmp_path,
        rules,
        "sms",
        "Hello.\nThis is a message from a debt collector.",
        variables=[],
    )
    assert [(f.rule, f.line) for f in findings] == [("sms.opt_out", BODY + 1)]
    assert "Reply STOP" in findings[0].message
    findings = lint(
        tmp_path, rules, "sms", f"{CN_SMS_START}您好。", variables=["lender.sms_signature"],
        locale="zh-CN",
    )  # fmt: skip
    assert [f.rule for f in findings] == ["sms.opt_out"] and "退订" in findings[0].message


# --- disclosures ------------------------------------------------------------------------------


def test_us_sms_says_it_is_from_a_debt_collector(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(tmp_path, rules, "sms", "Hello. Reply STOP to opt out", variables=[])
    assert [(f.rule, f.severity) for f in findings] == [("disclosure.debt-collector", "error")]
    assert "1006.18(e)" in findings[0].message


def test_chinese_sms_needs_no_debt_collector_disclosure(tmp_path: Path, rules: LintRules) -> None:
    text = f"{CN_SMS_START}您好。回复TD退订"
    findings = lint(
        tmp_path, rules, "sms", text, variables=["lender.sms_signature"], locale="zh-CN"
    )
    assert findings == []


# --- push ------------------------------------------------------------------------------------

PUSH = "{{% block title %}}{title}{{% endblock %}}\n{{% block body %}}{body}{{% endblock %}}\n"


def test_neutral_push_is_clean(tmp_path: Path, rules: LintRules) -> None:
    body = PUSH.format(title="{{ lender.name }}", body="You have a new message. Open the app.")
    assert lint(tmp_path, rules, "push", body, variables=["lender.name"]) == []
    body = PUSH.format(title="{{ lender.name }}", body="您有一条新消息，请打开App查看。")
    assert lint(tmp_path, rules, "push", body, variables=["lender.name"], locale="zh-CN") == []


def test_push_must_not_show_amounts_or_names(tmp_path: Path, rules: LintRules) -> None:
    body = PUSH.format(
        title="Hi {{ customer.greeting_name }}",
        body="Please send {{ amount.overdue | money }} today.",
    )
    findings = lint(
        tmp_path, rules, "push", body, variables=["customer.greeting_name", "amount.overdue"]
    )
    public = only(findings, "push.public_text")
    messages = " | ".join(f.message for f in public)
    assert {f.line for f in public} == {BODY, BODY + 1}
    assert "'customer.greeting_name'" in messages and "'amount.overdue'" in messages
    assert "currency sign '$'" in messages
    assert "shows an amount" in messages and "customer's name" in messages
    assert rule_ids(findings) == {"push.public_text"}


def test_push_forbidden_words_are_whole_words(tmp_path: Path, rules: LintRules) -> None:
    body = PUSH.format(title="Reminder", body="Your account is\nPast Due.")
    findings = lint(tmp_path, rules, "push", body, variables=[])
    assert [(f.rule, f.line) for f in findings] == [("push.public_text", BODY + 2)]
    assert "'past due'" in findings[0].message
    # "pay" is a forbidden word; "Payday" and "app" are other words.
    body = PUSH.format(title="Payday news", body="Open the app.")
    assert lint(tmp_path, rules, "push", body, variables=[]) == []


def test_push_forbidden_words_in_chinese(tmp_path: Path, rules: LintRules) -> None:
    body = PUSH.format(title="{{ lender.name }}", body="您的借款已逾期，请尽快处理。")
    findings = lint(tmp_path, rules, "push", body, variables=["lender.name"], locale="zh-CN")
    words = sorted(f.message.split("'")[1] for f in only(findings, "push.public_text"))
    assert words == ["借款", "逾期"]


def test_push_payload_limit(tmp_path: Path, rules: LintRules) -> None:
    us = rules.packs["US"]
    small = us.model_copy(update={"push": us.push.model_copy(update={"max_payload_bytes": 256})})
    strict = LintRules(packs={**rules.packs, "US": small}, banned=rules.banned, tiers=rules.tiers)
    fits = PUSH.format(title="News", body="x" * 150)
    assert lint(tmp_path, strict, "push", fits, variables=[]) == []
    too_big = PUSH.format(title="News", body="x" * 250)
    findings = lint(tmp_path, strict, "push", too_big, variables=[])
    assert {f.rule for f in findings} == {"push.payload"}
    assert re.search(r"payload is 29\d bytes .* allows 256", findings[0].message)


# --- letters ---------------------------------------------------------------------------------


def us_letter(body: str) -> str:
    return LETTER_HEAD.format(lang="en") + body + "\n"


VALIDATION_VARS = [
    f"validation.{name}"
    for name in (
        "itemization_date",
        "amount_on_itemization_date",
        "interest_since",
        "fees_since",
        "payments_since",
        "current_amount",
        "dispute_by",
    )
]


def test_us_letter_with_validation_notice_is_clean(tmp_path: Path, rules: LintRules) -> None:
    body = us_letter(f"{US_VALIDATION}\n{US_DISCLOSURE}")
    assert lint(tmp_path, rules, "letter", body, variables=VALIDATION_VARS, tier="middle") == []


def test_us_letter_needs_the_validation_fields(tmp_path: Path, rules: LintRules) -> None:
    body = us_letter(f"{{{{ validation.dispute_by }}}}\n\n{US_DISCLOSURE}")
    findings = lint(
        tmp_path, rules, "letter", body, variables=["validation.dispute_by"], tier="middle"
    )
    missing = only(findings, "letter.required_field")
    assert len(missing) == 6 and all(f.line == BODY for f in missing), missing
    assert any("validation.current_amount" in f.message for f in missing)
    assert rule_ids(findings) == {"letter.required_field"}


def test_us_letter_needs_the_mini_miranda(tmp_path: Path, rules: LintRules) -> None:
    body = us_letter(f"{US_VALIDATION}\nFrom a debt collector.\n")
    findings = lint(tmp_path, rules, "letter", body, variables=VALIDATION_VARS, tier="middle")
    assert rule_ids(findings) == {"disclosure.mini-miranda"}


def test_chinese_letters_need_neither(tmp_path: Path, rules: LintRules) -> None:
    body = LETTER_HEAD.format(lang="zh") + "尊敬的{{ customer.name }}：\n"
    assert lint(tmp_path, rules, "letter", body, variables=["customer.name"], locale="zh-CN") == []


# --- banned phrases ----------------------------------------------------------------------------


def test_banned_phrases_in_the_source(tmp_path: Path, rules: LintRules) -> None:
    text = f"Pay now.\nOr you will be ARRESTED\nby the police. {US_SMS_END}"
    findings = lint(tmp_path, rules, "sms", text, variables=[])
    assert sorted((f.rule, f.line) for f in findings) == [
        ("banned.arrest", BODY + 1),
        ("banned.impersonation", BODY + 2),
    ]
    assert "'arrest'" in only(findings, "banned.arrest")[0].message


def test_banned_phrases_span_lines_and_respect_word_starts(
    tmp_path: Path, rules: LintRules
) -> None:
    text = f"We may have to contact\nyour   family. Unarrested. {US_SMS_END}"
    findings = lint(tmp_path, rules, "sms", text, variables=[])
    assert [(f.rule, f.line) for f in findings] == [("banned.threat", BODY)]


def test_banned_chinese_phrases(tmp_path: Path, rules: LintRules) -> None:
    text = f"{CN_SMS_START}老赖请还款，否则后果自负。回复TD退订"
    findings = lint(
        tmp_path, rules, "sms", text, variables=["lender.sms_signature"], locale="zh-CN"
    )
    assert rule_ids(findings) == {"banned.insult", "banned.threat"}
    # English phrases do not apply to Chinese templates, and the other way round.
    text = f"{CN_SMS_START}您好，jail。回复TD退订"
    findings = lint(
        tmp_path, rules, "sms", text, variables=["lender.sms_signature"], locale="zh-CN"
    )
    assert findings == []


def test_banned_phrases_from_variables_in_the_rendered_text(
    tmp_path: Path, rules: LintRules
) -> None:
    lender = DEMO_LENDER["en-US"]
    shady = lender.__class__(**{**lender.__dict__, "website": "https://police-dept.example.com"})
    with_lender = LintRules(
        packs=rules.packs, banned=rules.banned, lenders={"en-US": shady}, tiers=rules.tiers
    )
    text = f"Visit {{{{ lender.website }}}}. {US_SMS_END}"
    assert lint(tmp_path, rules, "sms", text, variables=["lender.website"]) == []
    findings = lint(tmp_path, with_lender, "sms", text, variables=["lender.website"])
    assert [(f.rule, f.line) for f in findings] == [("banned.impersonation", 1)]
    assert "rendered text" in findings[0].message


# --- broken templates and packs -----------------------------------------------------------------


def test_syntax_errors(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(tmp_path, rules, "sms", f"Hello\n{{{{ dpd \n{US_SMS_END}", variables=["dpd"])
    assert [f.rule for f in findings] == ["template.syntax"]
    assert findings[0].line >= BODY


def test_render_errors(tmp_path: Path, rules: LintRules) -> None:
    text = f"Hello\nby {{{{ amount.overdue | date }}}}. {US_SMS_END}"
    findings = lint(tmp_path, rules, "sms", text, variables=["amount.overdue"])
    assert [(f.rule, f.line) for f in findings] == [("template.render", BODY + 1)]
    assert "date needs a date" in findings[0].message


def test_a_jurisdiction_without_a_pack(tmp_path: Path, rules: LintRules) -> None:
    findings = lint(tmp_path, rules, "sms", "Hello.", variables=[], jurisdiction="GB")
    assert [(f.rule, f.line) for f in findings] == [("pack.missing", 6)]  # `jurisdiction:`
    findings = lint(tmp_path, rules, "sms", f"Hello. {US_SMS_END}", variables=[])
    assert findings == []


def test_lint_all_sorts_and_names_unknown_templates(tmp_path: Path, rules: LintRules) -> None:
    write_template(tmp_path, "sms", "Hello.", variables=["dpd"])
    store = TemplateStore(tmp_path)
    findings = Linter(store, rules).lint_all()
    assert findings == sorted(findings)
    assert str(findings[0]).startswith("sms/early/reminder.en-US:")
    with pytest.raises(Exception, match="does not exist"):
        Linter(store, rules).lint_all(["sms/early/nope.en-US"])


def test_phrase_patterns() -> None:
    assert phrase_pattern("pay").search("Please PAY now")
    assert not phrase_pattern("pay").search("payment, repay, app")
    assert phrase_pattern("arrest", whole_word=False).search("arrested")
    assert not phrase_pattern("arrest", whole_word=False).search("unarrested")
    assert phrase_pattern("past due").search("is past\n  due")
    assert phrase_pattern("$").search("US$5")
    assert phrase_pattern("逾期").search("已逾期3天")
    assert phrase_pattern("App").search("打开App查看")  # next to Chinese is a word boundary
