"""The daily run keeps each message's vendor metadata in the outbox (outbox_message.vendor):
Aliyun's template code and the parameters rendered for that message, for the CN SMS templates;
SQL NULL for every template without a vendor block. A message whose parameters do not render,
or whose registered text would not be its rendered text, is held render_failed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from dunning.bootstrap import Runtime
from dunning.db.tables import OUTBOX
from dunning.errors import TemplateError
from dunning.rendering import (
    MessageContext,
    RegisteredTemplate,
    Renderer,
    TemplateRef,
    aliyun_text,
)
from dunning.services.daily import Outreach, run_daily_outreach
from tests.factories import OPEN_FOR_ALL, add_account
from tests.helpers import outreach_at

AS_OF = OPEN_FOR_ALL.date()


@pytest.fixture
def outreach(runtime: Runtime) -> Iterator[Outreach]:
    parts = outreach_at(runtime)
    yield parts
    parts.close()


def outbox(env: Outreach) -> dict[int, dict[str, object]]:
    with env.runtime.engine.connect() as c:
        return {
            row["account_id"]: dict(row)
            for row in (r._mapping for r in c.execute(select(OUTBOX).order_by(OUTBOX.c.id)))
        }


def test_cn_sms_keeps_its_aliyun_code_and_rendered_params_and_the_others_null(
    outreach: Outreach,
) -> None:
    with outreach.runtime.unit_of_work() as c:
        cn_sms = add_account(c, dpd=3, as_of=AS_OF, jurisdiction="CN", amount_minor=1234_50)
        cn_firm = add_account(c, dpd=38, as_of=AS_OF, jurisdiction="CN")
        cn_push = add_account(c, dpd=1, as_of=AS_OF, jurisdiction="CN")
        us_sms = add_account(c, dpd=14, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    rows = outbox(outreach)
    sms = rows[cn_sms]
    assert (sms["template_id"], sms["status"]) == ("sms/early/reminder.zh-CN", "sent")
    pay_by = outreach.planner.deadlines("CN", AS_OF).pay_by
    assert sms["vendor"] == {
        "aliyun": {
            "template_code": "SMS_480216001",
            "params": {
                "name": "王伟",
                "amount": "¥1,234.50",
                "pay_by": f"{pay_by.year}年{pay_by.month}月{pay_by.day}日",
            },
        }
    }
    firm = rows[cn_firm]
    assert firm["template_id"] == "sms/middle/firm_reminder.zh-CN"
    assert firm["vendor"]["aliyun"]["template_code"] == "SMS_480216003"  # type: ignore[index]
    assert firm["vendor"]["aliyun"]["params"]["days"] == "38"  # type: ignore[index]
    # What Aliyun sends for these parameters is the text the outbox records.
    registered = outreach.planner.aliyun
    assert registered is not None
    for row in (sms, firm):
        vendor = row["vendor"]["aliyun"]  # type: ignore[index]
        text = registered.templates[vendor["template_code"]].text
        assert aliyun_text(registered.sign_name, text, vendor["params"]) == row["body"]
    assert rows[cn_push]["channel"] == "push" and rows[cn_push]["vendor"] is None
    assert rows[us_sms]["template_id"] == "sms/early/reminder.en-US"
    assert rows[us_sms]["vendor"] is None
    with outreach.runtime.engine.connect() as c:
        # SQL NULL, not the JSON value null.
        nulls = c.execute(select(OUTBOX.c.account_id).where(OUTBOX.c.vendor.is_(None))).scalars()
        assert sorted(nulls) == sorted([cn_push, us_sms])


class ParamsBreakOnOneCustomer(Renderer):
    """Renders as the real renderer does, except the vendor parameters of one customer."""

    def vendor_params(self, ref: TemplateRef, context: MessageContext) -> dict[str, dict[str, str]]:
        if context.customer.name == "李娜":
            raise TemplateError(f"{ref.id}: vendor.aliyun.params.amount: undefined variable")
        return super().vendor_params(ref, context)


def test_params_that_do_not_render_hold_the_message_render_failed(runtime: Runtime) -> None:
    with runtime.unit_of_work() as c:
        broken = add_account(c, dpd=3, as_of=AS_OF, jurisdiction="CN", name="李娜")
        fine = add_account(c, dpd=3, as_of=AS_OF, jurisdiction="CN")
    templates = outreach_at(runtime).planner.templates
    outreach = outreach_at(runtime, renderer=ParamsBreakOnOneCustomer(templates))
    summary = run_daily_outreach(outreach, AS_OF)
    rows = outbox(outreach)
    held = rows[broken]
    assert (held["status"], held["suppression"]) == ("held", "render_failed")
    assert held["last_error"] == (
        "sms/early/reminder.zh-CN: vendor.aliyun.params.amount: undefined variable"
    )
    assert held["body"] is None and held["recipient"] is None and held["vendor"] is None
    assert rows[fine]["status"] == "sent" and rows[fine]["vendor"] is not None
    assert summary["this_run"]["held_by_suppression"] == {"render_failed": 1}


def test_a_registered_text_that_differs_from_the_rendered_one_holds_the_message(
    outreach: Outreach,
) -> None:
    registered = outreach.planner.aliyun
    assert registered is not None
    code = "SMS_480216001"
    drifted = registered.templates[code].text.replace("如已还款请忽略", "如已还款请勿略")
    outreach.planner.aliyun = registered.model_copy(
        update={"templates": {**registered.templates, code: RegisteredTemplate(text=drifted)}}
    )
    with outreach.runtime.unit_of_work() as c:
        account = add_account(c, dpd=3, as_of=AS_OF, jurisdiction="CN")
        other = add_account(c, dpd=38, as_of=AS_OF, jurisdiction="CN")
    run_daily_outreach(outreach, AS_OF)
    rows = outbox(outreach)
    held = rows[account]
    assert (held["status"], held["suppression"]) == ("held", "render_failed")
    error = str(held["last_error"])
    assert error == (
        f"sms/early/reminder.zh-CN: vendor.aliyun: the registered text of {code} "
        "(templates/registered/aliyun.yaml) with this message's parameters differs from the "
        "rendered text from character 83"
    )
    assert "王伟" not in error and "1,2" not in error  # no customer data
    assert rows[other]["status"] == "sent"


def test_a_template_whose_code_is_not_registered_is_held(outreach: Outreach) -> None:
    registered = outreach.planner.aliyun
    assert registered is not None
    outreach.planner.aliyun = registered.model_copy(
        update={
            "templates": {
                code: text for code, text in registered.templates.items() if code != "SMS_480216001"
            }
        }
    )
    with outreach.runtime.unit_of_work() as c:
        account = add_account(c, dpd=3, as_of=AS_OF, jurisdiction="CN")
    run_daily_outreach(outreach, AS_OF)
    held = outbox(outreach)[account]
    assert (held["status"], held["suppression"]) == ("held", "render_failed")
    assert held["last_error"] == (
        "sms/early/reminder.zh-CN: vendor.aliyun.template_code: SMS_480216001 is not in "
        "templates/registered/aliyun.yaml"
    )
