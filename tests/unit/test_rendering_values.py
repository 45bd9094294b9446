"""What a message can show: text, numbers, dates and money, never a Python object as text.

A template that named a method without calling it (`{{ lender.name.upper }}`) sent
`<built-in method upper of str object at 0x7f...>` in a letter. Every shipped template is rendered
here with values of the wrong kinds in each field of its context; each way a template can make
text of a value is tried on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dunning.errors import TemplateError
from dunning.rendering import (
    RenderedMessage,
    TemplateRef,
    TemplateStore,
    sample_context,
    sample_extra,
)
from dunning.rendering._printable import python_repr_in
from dunning.rendering.context import MessageContext
from tests.helpers import repo_renderer

REPO = Path(__file__).resolve().parents[2]
STORE = TemplateStore(REPO / "templates" / "messages")
RENDERER = repo_renderer(STORE)

REPR_MARKERS = ("<built-in", "<function", "<bound method", " object at 0x", "<class ", "<module ")
"""What Python's repr() of a method, function or object looks like (escaped in letters' HTML)."""


class Thing:
    """An object with no text of its own: str() gives `<...Thing object at 0x...>`."""

    def method(self) -> str:
        return "x"


def a_function() -> str:
    return "x"


@dataclasses.dataclass(frozen=True)
class Record:
    name: str

    def greet(self) -> str:
        return self.name


WRONG_KINDS: dict[str, Any] = {
    "built-in method": "Jennifer".upper,
    "built-in function": len,
    "function": a_function,
    "bound method": Thing().method,
    "bound method of a dataclass": Record("Jennifer").greet,
    "class": str,
    "object": Thing(),
    "dataclass": Record("Jennifer"),
    "mapping": {"name": "Jennifer", "method": "x".upper},
    "list of objects": [Thing(), Thing().method],
    "None": None,
    "yes/no": True,
}


def shows_python(message: RenderedMessage) -> list[str]:
    text = "\n".join(part for part in (message.subject, message.text, message.html) if part)
    text = text.replace("&lt;", "<")
    return [marker for marker in REPR_MARKERS if marker in text]


def context_for(ref: TemplateRef) -> MessageContext:
    context = sample_context(ref.locale, ref.tier, jurisdiction=ref.metadata.jurisdiction)
    return dataclasses.replace(context, extra=sample_extra(ref.metadata.purpose, context))


def paths(value: object, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every field of a context: dataclass fields, mapping keys, the first item of lists."""
    children: list[tuple[str | int, object]] = []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list) and value:
        children = [(0, value[0])]
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def replaced(value: Any, path: tuple[str | int, ...], new: object) -> Any:
    """`value` with the field at `path` replaced by `new` (copies; nothing is changed)."""
    if not path:
        return new
    key, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, key: replaced(value[key], rest, new)}
    if isinstance(value, list):
        assert isinstance(key, int)
        return [replaced(item, rest, new) if i == key else item for i, item in enumerate(value)]
    assert isinstance(key, str)
    return dataclasses.replace(value, **{key: replaced(getattr(value, key), rest, new)})


@pytest.mark.parametrize("ref", STORE.all(), ids=lambda ref: ref.id)
def test_no_shipped_template_shows_a_python_object(ref: TemplateRef) -> None:
    context = context_for(ref)
    assert shows_python(RENDERER.render(ref, context)) == []
    tried = failed = 0
    for path in paths(context):
        if path == ("extra",):
            continue
        for kind, value in WRONG_KINDS.items():
            tried += 1
            try:
                message = RENDERER.render(ref, replaced(context, path, value))
            except TemplateError as exc:
                failed += 1
                assert "Jennifer" not in str(exc), (path, kind)
                continue
            shown = shows_python(message)
            assert shown == [], f"{'.'.join(map(str, path))} = {kind}: the message shows {shown}"
    assert failed > 0 and tried > 100


TEXT_HEADER = """{{#---
id: {id}
channel: {channel}
tier: early
locale: en-US
jurisdiction: US
purpose: reminder
variables: [lender.name]
---#}}
"""


def render(tmp_path: Path, body: str, channel: str = "sms") -> RenderedMessage:
    template_id = f"{channel}/early/reminder.en-US"
    ext = ".typ" if channel == "letter" else ".txt"
    root = tmp_path / channel  # one templates directory per channel a test renders
    if channel == "letter":  # its layout module lives beside templates/messages
        (root / "typst").mkdir(parents=True)
        (root / "typst/letter.typ").write_text("#let letter(body) = body\n", encoding="utf-8")
    path = root / "messages" / f"{template_id}{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TEXT_HEADER.format(id=template_id, channel=channel) + body, encoding="utf-8")
    store = TemplateStore(root / "messages")
    return repo_renderer(store).render(store.get(template_id), sample_context("en-US", "early"))


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("{{ lender.name.upper }}", "prints a method (call it, or print a field)"),
        ("{% set up = lender.name.upper %}{{ up }}", "prints a method"),
        ("{{ lender.name.upper | default('x') }}", "prints a method"),
        ("{{ customer }}", "prints an object (CustomerView)"),
        ("{{ address.lines }}", "prints a list (loop over it, or join it)"),
        ("{{ range(3) }}", "prints a list"),
        ("{{ {'a': 1} }}", "prints a mapping"),
        ("{{ none }}", "prints None (no value)"),
        ("{{ validation is none }}", "prints a yes/no value (test it with {% if %} instead)"),
        ("{{ dict }}", "prints a class"),
        ("{{ lipsum }}", "prints a function"),
        ("{% macro m() %}x{% endmacro %}{{ m }}", "prints a function"),
        ("{{ lender.name.upper | string }}", "the string filter is given a method"),
        ("{{ lender | string }}", "the string filter is given an object (LenderView)"),
        ("{{ lender.name.upper | upper }}", "the upper filter is given a method"),
        ("{{ lender.name.upper | safe }}", "the safe filter is given a method"),
        ("{{ lender.name.upper | e }}", "the e filter is given a method"),
        ("{{ lender.name.upper | mask }}", "the mask filter is given a method"),
        ("{{ lender.name.upper | truncate(5, true) }}", "the truncate filter is given a method"),
        ("{{ lender.name | urlize(target=lender.name.upper) }}",
         "the urlize filter is given a method"),
        ("{{ [lender.name.upper] | join(', ') }}", "the join filter is given a method"),
        ("{{ [customer] | join }}", "the join filter is given an object (CustomerView)"),
        ("{{ '%s' | format(customer) }}", "the format filter is given an object (CustomerView)"),
        ("{{ lender.name | replace('D', lender.name.upper) }}",
         "the replace filter is given a method"),
        ("{{ lender.name | replace('D', none) }}", "the replace filter is given None"),
        ("{{ 'Hi ' ~ lender.name.upper }}", "~ joins a method"),
        ("{{ 'Hi ' ~ customer }}", "~ joins an object (CustomerView)"),
        ("{{ 'Hi %s' % lender.name.upper }}", "% formats a method"),
        ("{{ 'Hi %s %s' % (lender.name, customer) }}", "% formats an object (CustomerView)"),
        ("{{ 'Hi {}'.format(lender.name) }}", "str.format and format_map are not allowed"),
        ("{{ '{0.upper}'.format(lender.name) }}", "str.format and format_map are not allowed"),
        ("{{ lender.name | pprint }}", "syntax error: No filter named 'pprint'"),
        ("{{ lender | tojson }}", "syntax error: No filter named 'tojson'"),
        ("{{ {'a': 1} | xmlattr }}", "syntax error: No filter named 'xmlattr'"),
    ],
)  # fmt: skip
def test_every_way_to_make_text_of_an_object_is_refused(
    tmp_path: Path, body: str, error: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, body)
    assert str(caught.value).startswith(f"sms/early/reminder.en-US: line 10: {error}")
    assert (
        str(caught.value).endswith("only text, numbers, dates and money can go into a message")
        or "not allowed" in str(caught.value)
        or "syntax error" in str(caught.value)
    )
    assert "Jennifer" not in str(caught.value) and "Dunning Demo" not in str(caught.value)


def test_a_letter_or_push_with_a_method_is_refused_too(tmp_path: Path) -> None:
    letter = '#import "letter.typ": *\n{{ lender.name.upper }}\n'
    with pytest.raises(TemplateError, match=r"^letter/early/reminder\.en-US: line 11: prints a"):
        render(tmp_path, letter, "letter")
    push = (
        "{% block title %}{{ lender.name }}{% endblock %}\n"
        "{% block body %}\n{{ lender.name.upper }}{% endblock %}"
    )
    with pytest.raises(TemplateError, match=r"^push/early/reminder\.en-US: line 12: prints a"):
        render(tmp_path, push, "push")


def test_what_a_message_can_show(tmp_path: Path) -> None:
    body = (
        "{{ lender.name.upper() }}|{{ address.lines | join(', ') }}|{{ address.lines[0] }}|"
        "{{ amount.overdue }}|{{ amount.overdue | money }}|{{ as_of }}|{{ as_of | date }}|"
        "{{ dpd }}|{{ dpd / 2 }}|{% for line in address.lines %}{{ line }};{% endfor %}|"
        "{% if validation %}validation{% endif %}|{{ 'a' ~ dpd ~ amount.overdue }}|"
        "{{ 'DPD %d' % dpd }}|{{ '%s' | format(lender.name) }}|"
        "{{ lender.name | truncate(9, true) }}|"
        "{{ address.lines | map('upper') | join(' ') }}|{{ account.reference_masked | mask }}|"
        "{{ none | default('n/a', true) }}|{{ address.lines | length }}"
    )
    assert render(tmp_path, body).text == (
        "DUNNING DEMO LENDER|1847 Maple Avenue, Apt 3B, Columbus, OH 43215|1847 Maple Avenue|"
        "1437.50|$1,437.50|2025-06-16|June 16, 2025|7|3.5|1847 Maple Avenue;Apt 3B;"
        "Columbus, OH 43215;|validation|a71437.50|DPD 7|Dunning Demo Lender|Dunnin...|"
        "1847 MAPLE AVENUE APT 3B COLUMBUS, OH 43215|****4821|n/a|3"
    )


@pytest.mark.parametrize(
    "text",
    [
        "<built-in method upper of str object at 0x7f3a2c1d5e70>",
        "&lt;built-in function len&gt;",
        "<function a_function at 0x7f3a2c1d5e70>",
        "<bound method Record.greet of Record(name='x')>",
        "<__main__.Thing object at 0x7f3a2c1d5e70>",
        "<class 'str'>",
        "&lt;module 'os' from '/usr/lib/python3.11/os.py'&gt;",
    ],
)
def test_python_reprs_are_recognised(text: str) -> None:
    assert python_repr_in(f"Dear customer, {text} is due.")


@pytest.mark.parametrize(
    "text",
    ["Pay by card or another payment method of your choice.", '<div class="window">', "0x1F"],
)
def test_ordinary_text_is_not_a_repr(text: str) -> None:
    assert not python_repr_in(text)


def test_the_output_is_checked_last(tmp_path: Path) -> None:
    # However a repr got into the text (here, as data), the message is refused, not sent.
    path = tmp_path / "sms/early/reminder.en-US.txt"
    path.parent.mkdir(parents=True)
    path.write_text(
        TEXT_HEADER.format(id="sms/early/reminder.en-US", channel="sms") + "Hi {{ lender.name }}"
    )
    store = TemplateStore(tmp_path)
    context = sample_context("en-US", "early")
    lender = dataclasses.replace(context.lender, name="<function upper at 0x7f3a2c1d5e70>")
    with pytest.raises(TemplateError) as caught:
        repo_renderer(store).render(
            store.get("sms/early/reminder.en-US"), dataclasses.replace(context, lender=lender)
        )
    assert str(caught.value) == (
        "sms/early/reminder.en-US: the output shows a Python method, function or object as text: "
        "only text, numbers, dates and money can go into a message"
    )
