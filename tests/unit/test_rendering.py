"""The template store, front matter, filters, and how the renderer shapes text and errors."""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from babel import Locale
from hypothesis import given
from hypothesis import strategies as st

from dunning.errors import TemplateError
from dunning.rendering import (
    TemplateStore,
    format_date,
    format_money,
    mask,
    sample_context,
)
from dunning.rendering._formatting import money_formatter
from dunning.rendering._text import html_to_text, one_paragraph
from dunning.rendering._typst import typst_to_text
from dunning.types import Channel
from tests.helpers import repo_renderer

SMS_HEADER = """{{#---
id: {id}
channel: sms
tier: early
locale: en-US
jurisdiction: US
purpose: reminder
variables: [customer.greeting_name, amount.overdue]
---#}}
"""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def sms(root: Path, body: str, name: str = "reminder") -> TemplateStore:
    template_id = f"sms/early/{name}.en-US"
    write(root, f"{template_id}.txt", SMS_HEADER.format(id=template_id) + body)
    return TemplateStore(root)


# --- the store -----------------------------------------------------------------------------


def test_store_reads_the_shipped_templates(repo_dir: Path) -> None:
    store = TemplateStore(repo_dir / "templates/messages")
    ids = [ref.id for ref in store.all()]
    assert len(ids) == 22  # 12 for the cadence, 6 broken promises, 4 for payment plans
    assert ids == sorted(ids)
    ref = store.find(Channel.SMS, "early", "reminder", "zh-CN")
    assert ref is not None
    assert ref is store.find("sms", "early", "reminder", "zh_CN")
    assert ref is store.get("sms/early/reminder.zh-CN")
    assert (ref.channel, ref.tier, ref.name, ref.locale) == ("sms", "early", "reminder", "zh-CN")
    assert ref.metadata.jurisdiction == "CN"
    assert ref.source.startswith("{#---")
    assert len(ref.content_hash) == 64
    assert store.find("sms", "early", "reminder", "fr-FR") is None
    with pytest.raises(TemplateError, match=r"sms/early/nothing\.en-US"):
        store.get("sms/early/nothing.en-US")


def test_letters_carry_their_layout(repo_dir: Path) -> None:
    store = TemplateStore(repo_dir / "templates/messages")
    letter = store.get("letter/middle/notice.en-US")
    assert letter.css is not None and "#let letter(" in letter.css
    assert [name for name, _ in letter.modules] == ["letter.typ"]
    assert store.get("sms/early/reminder.en-US").css is None


def test_content_hash_changes_with_one_character(tmp_path: Path) -> None:
    first = sms(tmp_path, "Hi {{ customer.greeting_name }}.").get("sms/early/reminder.en-US")
    second = sms(tmp_path, "Hi {{ customer.greeting_name }}!").get("sms/early/reminder.en-US")
    assert first.content_hash != second.content_hash


def test_letter_hash_covers_the_layout(tmp_path: Path, repo_dir: Path) -> None:
    shipped = repo_dir / "templates"
    messages = tmp_path / "messages"
    layout = (shipped / "typst/letter.typ").read_text(encoding="utf-8")
    write(tmp_path, "typst/letter.typ", layout)
    notice = "letter/middle/notice.en-US.typ"
    text = (shipped / "messages" / notice).read_text(encoding="utf-8")
    write(messages, notice, text)
    before = TemplateStore(messages).get("letter/middle/notice.en-US").content_hash
    write(tmp_path, "typst/letter.typ", layout + "\n#let accent = black\n")
    after = TemplateStore(messages).get("letter/middle/notice.en-US")
    assert after.content_hash != before
    assert after.css is not None and after.css.endswith("#let accent = black\n")
    (tmp_path / "typst/letter.typ").unlink()
    with pytest.raises(
        TemplateError, match=r"imports letter\.typ, which is not in templates/typst"
    ):
        TemplateStore(messages)


@pytest.mark.parametrize(
    ("relative", "text", "reason"),
    [
        ("sms/early/reminder.en-US.txt", "Hello", "does not start with a front matter"),
        ("sms/early/reminder.en-US.txt", "{#---\nid: [unclosed\n---#}\n", "not valid YAML"),
        (
            "sms/early/reminder.en-US.txt",
            SMS_HEADER.format(id="sms/early/other.en-US"),
            "id is 'sms/early/other.en-US' but the path says 'sms/early/reminder.en-US'",
        ),
        (
            "sms/early/reminder.en-US.txt",
            SMS_HEADER.format(id="sms/early/reminder.en-US").replace("tier: early", "tier: late"),
            "tier is 'late'",
        ),
        (
            "sms/early/reminder.en-US.txt",
            SMS_HEADER.format(id="sms/early/reminder.en-US").replace(
                "locale: en-US", "locale: zh-CN"
            ),
            "locale is 'zh-CN'",
        ),
        (
            "sms/early/reminder.en-US.txt",
            SMS_HEADER.format(id="sms/early/reminder.en-US").replace(
                "purpose:", "approved: yes\npurpose:"
            ),
            "approved: Extra inputs are not permitted",
        ),
        (
            "sms/early/reminder.en-US.txt",
            SMS_HEADER.format(id="sms/early/reminder.en-US").replace("jurisdiction: US\n", ""),
            "jurisdiction: Field required",
        ),
        (
            "sms/early/reminder.en-US.txt",
            SMS_HEADER.format(id="sms/early/reminder.en-US").replace(
                "amount.overdue", "amount..overdue"
            ),
            "variables.1",
        ),
        ("sms/early/reminder.txt", "x", "file name must be <name>.<locale>.<ext>"),
        ("sms/early/reminder.en-US.html", "x", "sms templates end in .txt"),
        ("fax/early/reminder.en-US.txt", "x", "unknown channel directory 'fax'"),
        ("sms/reminder.en-US.txt", "x", "<channel>/<tier>/<name>.<locale>.<ext>"),
        ("letter/early/reminder.en-US.html", "x", "letters are Typst now"),
    ],
)
def test_bad_files_are_named_with_the_reason(
    tmp_path: Path, relative: str, text: str, reason: str
) -> None:
    root = tmp_path / "templates" / "messages"
    write(root, relative, text)
    with pytest.raises(TemplateError) as caught:
        TemplateStore(root)
    message = str(caught.value)
    assert f"templates/messages/{relative}" in message
    assert reason in message


def test_every_bad_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "sms/early/a.en-US.txt", "no header")
    write(tmp_path, "push/early/b.en-US.txt", "no header either")
    with pytest.raises(TemplateError) as caught:
        TemplateStore(tmp_path)
    assert "a.en-US.txt" in str(caught.value) and "b.en-US.txt" in str(caught.value)


def test_other_files_are_ignored_and_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "# templates")
    write(tmp_path, "sms/early/.reminder.en-US.txt.swp", "editor junk")
    assert TemplateStore(tmp_path).all() == []
    with pytest.raises(TemplateError, match="does not exist"):
        TemplateStore(tmp_path / "nowhere")


# --- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "locale", "expected"),
    [
        (Decimal("1234.5"), "USD", "en-US", "$1,234.50"),
        (Decimal("1234.5"), "CNY", "zh-CN", "¥1,234.50"),
        (Decimal("-3"), "USD", "en-US", "-$3.00"),
        (0, "CNY", "zh-CN", "¥0.00"),
        (Decimal("1234567.891"), "USD", "en-US", "$1,234,567.89"),
        (Decimal("1234.5"), "CNY", "en-US", "CN¥1,234.50"),
        (Decimal("1234.5"), "EUR", "de-DE", "1.234,50\xa0€"),
        (Decimal("1234"), "JPY", "ja-JP", "￥1,234"),
        (Decimal("1234567.5"), "INR", "hi-IN", "₹12,34,567.50"),
    ],
)
def test_money(value: Decimal | int, currency: str, locale: str, expected: str) -> None:
    assert format_money(value, currency, locale) == expected


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=2, allow_nan=False),
    st.sampled_from(
        [("en-US", "USD"), ("zh-CN", "CNY"), ("de-DE", "EUR"), ("fr-FR", "EUR"), ("hi-IN", "INR")]
    ),
)
def test_money_fast_path_agrees_with_babel(value: Decimal, pair: tuple[str, str]) -> None:
    locale_tag, currency = pair
    locale = Locale.parse(locale_tag.replace("-", "_"))
    expected = locale.currency_formats["standard"].apply(value, locale, currency=currency)
    assert money_formatter(locale_tag, currency)(value) == expected


def test_money_refuses_floats() -> None:
    with pytest.raises(TypeError, match="float"):
        format_money(1.5, "USD", "en-US")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("locale", "fmt", "expected"),
    [
        ("en-US", "long", "June 30, 2025"),
        ("en-US", "medium", "Jun 30, 2025"),
        ("en-US", "short", "6/30/25"),
        ("zh-CN", "long", "2025年6月30日"),
        ("zh-CN", "short", "2025/6/30"),
        ("en-US", "yyyy-MM-dd", "2025-06-30"),
    ],
)
def test_date(locale: str, fmt: str, expected: str) -> None:
    assert format_date(date(2025, 6, 30), fmt, locale) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("6222021234567890", "************7890"),
        ("AB-12345", "****2345"),
        ("12345", "****2345"),
        ("1234", "****"),
        ("", "****"),
        (98761234, "****1234"),
    ],
)
def test_mask(value: object, expected: str) -> None:
    assert mask(value) == expected


# --- rendering -----------------------------------------------------------------------------


def test_filters_use_the_context_currency_and_locale(tmp_path: Path) -> None:
    store = sms(
        tmp_path,
        "{{ amount.overdue | money }} by {{ pay_by | date }}; {{ pay_by | date('short') }};"
        " {{ account.reference_masked | mask }}; {{ amount.overdue | money('EUR') }}",
    )
    ref = store.get("sms/early/reminder.en-US")
    context = sample_context("en-US", "early")
    context = dataclasses.replace(
        context, amount=dataclasses.replace(context.amount, overdue=Decimal("1234.5"))
    )
    text = repo_renderer(store).render(ref, context).text
    assert text == "$1,234.50 by June 23, 2025; 6/23/25; ****4821; €1,234.50"
    chinese = dataclasses.replace(
        sample_context("zh-CN", "early"),
        amount=dataclasses.replace(context.amount, overdue=Decimal("1234.5")),
    )
    assert repo_renderer(store).render(ref, chinese).text.startswith("¥1,234.50 by 2025年6月23日")


def test_sms_lines_become_one_paragraph() -> None:
    assert one_paragraph("  Hello\n  there, \n\nfriend.\n\n") == "Hello there, friend."
    assert (
        one_paragraph("【贷】您好，\n请还款。\nReply\nTD退订\n")
        == "【贷】您好，请还款。Reply TD退订"
    )
    assert one_paragraph("no breaks  \n") == "no breaks"


def test_letter_text_keeps_blocks_and_table_cells() -> None:
    html = (
        "<html><head><title>t</title><style>p {}</style></head><body>"
        "<div><div>Jane Doe</div><div>1 Main  St</div></div><h1>Hello</h1>"
        "<p>One\n &amp; two</p><table><tr><th>A</th><td>1</td></tr><tr><th>B</th><td></td></tr>"
        "</table><p>x<br>y</p></body></html>"
    )
    assert html_to_text(html) == "Jane Doe\n1 Main St\nHello\n\nOne & two\n\nA\t1\nB\n\nx\ny"


def test_typst_letter_text_keeps_headings_paragraphs_and_table_rows() -> None:
    markup = (
        '#import "letter.typ": *\n#show: letter.with(lang: "en", reference: [R-1])\n'
        "#facts[Date][June 1][Account][\\*\\*21]\n\n= Final demand\nDear Jane,\n"
        "you owe\n*\\$5*.\n\n"
        "#amounts(caption: [As of today], emphasized: 1,\n  [Fees], [\\+ \\$1],\n  [Left], [],\n)\n"
        "== How to pay\nOnline.\n- First item\n  goes on\n- Second\n\n"
        "您好，\n请还款。 // a comment\n"
    )
    assert typst_to_text(markup) == (
        "R-1\nDate\tJune 1\nAccount\t**21\nFinal demand\nDear Jane, you owe $5.\n"
        "As of today\nFees\t+ $1\nLeft\nHow to pay\nOnline.\nFirst item goes on\nSecond\n"
        "您好，请还款。"
    )


def test_extra_variables_are_visible_but_cannot_shadow_the_context(tmp_path: Path) -> None:
    store = sms(tmp_path, "{{ plan_months }} {{ customer.greeting_name }}")
    ref = store.get("sms/early/reminder.en-US")
    context = dataclasses.replace(
        sample_context("en-US", "early"), extra={"plan_months": 6, "customer": "spoofed"}
    )
    assert repo_renderer(store).render(ref, context).text == "6 Jennifer"


def test_undefined_variable_names_the_template_and_line(tmp_path: Path) -> None:
    store = sms(tmp_path, "Hi {{ customer.greeting_name }},\nyou owe {{ amount.ovedrue }}.")
    with pytest.raises(TemplateError) as caught:
        repo_renderer(store).render(
            store.get("sms/early/reminder.en-US"), sample_context("en-US", "early")
        )
    assert str(caught.value) == "sms/early/reminder.en-US: line 11: undefined variable 'ovedrue'"


def test_render_errors_never_quote_context_values(tmp_path: Path) -> None:
    # A dynamic subscript puts a context value (the customer's name) into Jinja's own message.
    store = sms(tmp_path, "{{ amount[customer.greeting_name] }}")
    with pytest.raises(TemplateError) as caught:
        repo_renderer(store).render(
            store.get("sms/early/reminder.en-US"), sample_context("en-US", "early")
        )
    assert "Jennifer" not in str(caught.value)
    assert "undefined variable" in str(caught.value)


def test_filters_report_undefined_values_as_undefined(tmp_path: Path) -> None:
    store = sms(tmp_path, "{{ amount.nothing | money }}")
    with pytest.raises(TemplateError, match="undefined variable 'nothing'"):
        repo_renderer(store).render(
            store.get("sms/early/reminder.en-US"), sample_context("en-US", "early")
        )


def test_wrong_type_for_a_filter(tmp_path: Path) -> None:
    store = sms(tmp_path, "{{ customer.greeting_name | money }}")
    with pytest.raises(TemplateError, match="money needs a Decimal or int, not str") as caught:
        repo_renderer(store).render(
            store.get("sms/early/reminder.en-US"), sample_context("en-US", "early")
        )
    assert "Jennifer" not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        "{{ customer.__class__.__mro__ }}",
        "{{ address.lines.append('x') }}",
        "{{ customer.greeting_name.__class__ }}",
    ],
)
def test_sandbox_violations_raise(tmp_path: Path, body: str) -> None:
    store = sms(tmp_path, body)
    context = sample_context("en-US", "early")
    with pytest.raises(
        TemplateError, match=r"^sms/early/reminder.en-US: line 10: sandbox violation"
    ):
        repo_renderer(store).render(store.get("sms/early/reminder.en-US"), context)
    assert context.address.lines == ["1847 Maple Avenue", "Apt 3B", "Columbus, OH 43215"]


def test_syntax_errors_and_includes(tmp_path: Path) -> None:
    store = sms(tmp_path, "Hi {{ customer.greeting_name }")
    with pytest.raises(TemplateError, match=r"sms/early/reminder.en-US: line 10: syntax error"):
        repo_renderer(store).compile(store.get("sms/early/reminder.en-US"))
    store = sms(tmp_path, "{% include 'sms/early/other.en-US' %}")
    with pytest.raises(TemplateError, match=r"^sms/early/reminder\.en-US: "):
        repo_renderer(store).render(
            store.get("sms/early/reminder.en-US"), sample_context("en-US", "early")
        )


def test_push_needs_title_and_body_blocks(tmp_path: Path) -> None:
    header = SMS_HEADER.replace("sms", "push").format(id="push/early/reminder.en-US")
    write(tmp_path, "push/early/reminder.en-US.txt", header + "{% block title %}T{% endblock %}")
    store = TemplateStore(tmp_path)
    with pytest.raises(
        TemplateError, match=re.escape("needs {% block title %} and {% block body %}")
    ):
        repo_renderer(store).compile(store.get("push/early/reminder.en-US"))
    write(
        tmp_path,
        "push/early/reminder.en-US.txt",
        header
        + "ignored\n{% block title %} T {% endblock %}\n{% block body %}\n B\n C {% endblock %}",
    )
    store = TemplateStore(tmp_path)
    message = repo_renderer(store).render(
        store.get("push/early/reminder.en-US"), sample_context("en-US", "early")
    )
    assert (message.subject, message.text, message.html) == ("T", "B C", None)


def test_a_changed_template_is_recompiled(tmp_path: Path) -> None:
    renderer = repo_renderer(sms(tmp_path, "one"))
    context = sample_context("en-US", "early")
    first = renderer.store.get("sms/early/reminder.en-US")
    assert renderer.render(first, context).text == "one"
    second = sms(tmp_path, "two").get("sms/early/reminder.en-US")
    assert renderer.render(second, context).text == "two"
    assert renderer.compile(first) is not renderer.compile(second)


def test_letters_escape_context_values(repo_dir: Path) -> None:
    store = TemplateStore(repo_dir / "templates/messages")
    context = sample_context("en-US", "middle")
    context = dataclasses.replace(
        context, customer=dataclasses.replace(context.customer, name="<b>Eve</b> & Co")
    )
    message = repo_renderer(store).render(store.get("letter/middle/notice.en-US"), context)
    assert message.typst is not None and message.html is None
    assert "\\<b\\>Eve\\<\\/b\\> \\& Co" in message.typst and "<b>Eve" not in message.typst
    assert "<b>Eve</b> & Co" in message.text
    assert message.typst.startswith("// dunning-typst 1\n")
    assert message.typst.count("#let letter(") == 1  # the layout spliced in, once
    assert re.search(r"^#import", message.typst, re.MULTILINE) is None
    assert message.subject is None


def test_variables_used_follows_attribute_chains(tmp_path: Path) -> None:
    store = sms(
        tmp_path,
        "{% set x = 1 %}{% for line in address.lines %}{{ line }}{% endfor %}"
        "{% if validation %}{{ validation.dispute_by | date }}{% endif %}"
        "{{ amount['overdue'] }}{{ x }}{{ plan_months }}",
    )
    used = repo_renderer(store).variables_used(store.get("sms/early/reminder.en-US"))
    assert used == {
        "address.lines",
        "validation",
        "validation.dispute_by",
        "amount.overdue",
        "plan_months",
    }


@pytest.mark.parametrize(
    ("body", "used", "computed"),
    [
        ("{{ customer[lender.name] }}", {"customer", "lender.name"}, {"customer": 10}),
        ("{{ amount.overdue[1] }}", {"amount.overdue"}, {}),
        ("{{ [1][0] }}", set(), {}),
        ("{{ address.lines[0] }}\n{{ address.lines[:2] | join }}", {"address.lines"}, {}),
        ("x\n{{ customer[lender.name].upper }}", {"customer", "lender.name"}, {"customer": 11}),
        ("{{ amount[customer['greeting_name']][0] }}", {"amount", "customer.greeting_name"},
         {"amount": 10}),
        ("{{ (address.lines | first)[dpd] }}", {"address.lines", "dpd"}, {}),
        ("{% set k = 'name' %}{% for c in [customer] %}{{ c[k] }}{% endfor %}", {"customer"}, {}),
    ],
)  # fmt: skip
def test_variables_used_through_subscripts(
    tmp_path: Path, body: str, used: set[str], computed: dict[str, int]
) -> None:
    # Each node of a subscript is walked once: these used to recurse until RecursionError.
    store = sms(tmp_path, body)
    renderer = repo_renderer(store)
    ref = store.get("sms/early/reminder.en-US")
    assert renderer.variables_used(ref) == used
    assert renderer.computed_subscripts(ref) == computed


def test_a_subscript_that_finds_nothing_is_undefined(tmp_path: Path) -> None:
    store = sms(tmp_path, "{{ amount.overdue[1] }}")
    with pytest.raises(TemplateError) as caught:
        repo_renderer(store).render(
            store.get("sms/early/reminder.en-US"), sample_context("en-US", "early")
        )
    assert str(caught.value) == (
        "sms/early/reminder.en-US: line 10: undefined variable: a subscript finds no element"
    )


@pytest.mark.parametrize(
    ("title", "body", "line"),
    [
        ("{{ lender.nope }}", "B", 10),
        ("T", "one\n{% for x in address.lines %}\n{{ x }}{{ lender.nope }}\n{% endfor %}", 14),
    ],
)
def test_push_errors_name_the_template_line(
    tmp_path: Path, title: str, body: str, line: int
) -> None:
    header = SMS_HEADER.replace("sms", "push").format(id="push/early/reminder.en-US")
    source = f"{header}{{% block title %}}{title}{{% endblock %}}\n{{% block body %}}\n{body}\n"
    write(tmp_path, "push/early/reminder.en-US.txt", source + "{% endblock %}\n")
    store = TemplateStore(tmp_path)
    with pytest.raises(TemplateError) as caught:
        repo_renderer(store).render(
            store.get("push/early/reminder.en-US"), sample_context("en-US", "early")
        )
    assert source.splitlines()[line - 1].count("lender.nope") == 1
    assert str(caught.value) == f"push/early/reminder.en-US: line {line}: undefined variable 'nope'"
