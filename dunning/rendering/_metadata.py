"""Template front matter: the YAML header inside a Jinja comment at the top of every template.

    {#---
    id: sms/early/reminder.en-US
    channel: sms
    tier: early
    locale: en-US
    jurisdiction: US
    purpose: reminder
    variables: [customer.greeting_name, amount.overdue, pay_by]
    ---#}

Being a Jinja comment, the header renders as nothing, and the template's line numbers stay the
file's line numbers (lint findings point at real lines).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from dunning.rendering._vendor import VendorBlock
from dunning.rendering.context import InstalmentTerms, MessageContext, PlanTerms, PromiseTerms
from dunning.types import Channel

FRONT_MATTER = re.compile(r"\A\{#---[ \t]*\r?\n(?P<yaml>.*?)\r?\n---#\}", re.DOTALL)
LOCALE = r"^[a-z]{2,3}(-[A-Z][a-z]{3})?-([A-Z]{2}|[0-9]{3})$"
VariablePath = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")]


class Purpose(StrEnum):
    """What a message is for: a closed set, so reports and reviews can group templates by it.

    Adding one is a code change (here, and in docs/compliance.md), on purpose: a new kind of
    message is a new thing for compliance to review.
    """

    REMINDER = "reminder"
    """A first, friendly reminder that a payment is past due (early tier)."""
    FIRM_REMINDER = "firm_reminder"
    """A firmer reminder once an account has been past due for a while (middle tier)."""
    FINAL_REMINDER = "final_reminder"
    """Repeated reminders after the final demand (late tier)."""
    NOTICE = "notice"
    """A written notice of a past-due account with the amounts (and, in the US, the validation
    notice)."""
    FINAL_DEMAND = "final_demand"
    """The last written demand before escalation."""
    BROKEN_PROMISE = "broken_promise"
    """The customer did not pay what they promised: the cadence resumes with this message."""
    PLAN_CONFIRMATION = "plan_confirmation"
    """Confirms a negotiated instalment plan and its terms."""
    PLAN_REMINDER = "plan_reminder"
    """A reminder a few days before a plan instalment is due."""


STEP_VARIABLES: dict[Purpose, dict[str, type]] = {
    Purpose.BROKEN_PROMISE: {"promise": PromiseTerms},
    Purpose.PLAN_CONFIRMATION: {"plan": PlanTerms},
    Purpose.PLAN_REMINDER: {"plan": PlanTerms, "instalment": InstalmentTerms},
}
"""The `extra` variables the engine gives templates of a purpose, beside the MessageContext."""


class TemplateMetadata(BaseModel):
    """What a template declares about itself; the path must agree with id/channel/tier/locale."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    channel: Channel
    tier: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    locale: str = Field(pattern=LOCALE)
    jurisdiction: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    purpose: Purpose
    variables: tuple[VariablePath, ...] = Field(
        description="dotted context paths the template uses (all of them, and nothing else: "
        "`dunning templates lint` checks both ways), e.g. amount.overdue"
    )
    vendor: VendorBlock | None = Field(
        default=None,
        description="what a vendor that sends only registered templates needs: the template's "
        "code there and its parameters (`vendor.aliyun`, SMS only; see _vendor)",
    )

    def declares(self, path: str) -> bool:
        """True when `path` is declared, or is a parent or a child of a declared path.

        A parent counts because templates test it (`{% if validation %}`); a child counts
        because declaring `address` means all of it.
        """
        return any(
            path == declared or declared.startswith(path + ".") or path.startswith(declared + ".")
            for declared in self.variables
        )


def split_front_matter(text: str) -> str:
    """The YAML text of the header; ValueError when the file does not start with one."""
    match = FRONT_MATTER.match(text)
    if match is None:
        raise ValueError("does not start with a front matter header ({#--- ... ---#})")
    return match.group("yaml")


def parse_front_matter(text: str) -> TemplateMetadata:
    """Parse and validate the header; ValueError with a reason (no file name) when it is bad."""
    try:
        data = yaml.safe_load(split_front_matter(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        # +1: the header's YAML starts on the file's second line.
        where = f" at line {mark.line + 2}" if mark is not None else ""
        raise ValueError(f"front matter is not valid YAML{where}: {exc.problem}") from None
    if not isinstance(data, dict):
        raise ValueError("front matter must be a mapping of keys to values")
    try:
        return TemplateMetadata.model_validate(data)
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()
        ]
        raise ValueError("front matter: " + "; ".join(reasons)) from None


def _dataclass_paths(cls: type[Any], prefix: str) -> set[str]:
    paths: set[str] = set()
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        path = f"{prefix}{item.name}"
        paths.add(path)
        hint = hints[item.name]
        # Optional dataclasses (ValidationNotice | None) contribute their fields too.
        candidates = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        for candidate in candidates:
            if dataclasses.is_dataclass(candidate) and isinstance(candidate, type):
                paths |= _dataclass_paths(candidate, path + ".")
    return paths


@cache
def context_paths(purpose: Purpose | None = None) -> frozenset[str]:
    """Every dotted path a MessageContext offers, with the `extra` variables of the purpose's
    steps (STEP_VARIABLES) when a purpose is given."""
    paths = set(_dataclass_paths(MessageContext, "")) - {"extra"}
    for name, view in STEP_VARIABLES.get(purpose, {}).items() if purpose else ():
        paths |= {name} | _dataclass_paths(view, name + ".")
    return frozenset(paths)
