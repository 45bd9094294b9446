"""Vendor metadata of a template, and the texts registered with vendors that send only those.

Aliyun SMS sends only templates registered in its console: a request names the template's code
and gives its parameters (`${name}` in the registered text), and Aliyun sends
`【SignName】` + the registered text with the parameters filled in. So a template that goes
through Aliyun declares, in its front matter,

    vendor:
      aliyun:
        template_code: SMS_480216001
        params:
          name: "{{ customer.greeting_name }}"      # Jinja, rendered with the message's context
          amount: "{{ amount.overdue | money }}"

and the program directory keeps a copy of the registered texts (templates/registered/aliyun.yaml,
RegisteredTexts), which `dunning templates lint` proves equal to the Jinja text (aliyun_text).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictStr, StringConstraints

ALIYUN_CODE = r"^SMS_\d+$"
"""Aliyun's template codes: SMS_ and digits (SMS_480216001)."""
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
"""A parameter in an Aliyun template text: ${name}."""
ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]


class AliyunTemplate(BaseModel):
    """`vendor.aliyun` of a template: its registered code and how each parameter renders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    template_code: StrictStr = Field(pattern=ALIYUN_CODE, description="e.g. SMS_480216001")
    params: dict[ParamName, StrictStr] = Field(
        default_factory=dict,
        description="parameter name -> Jinja text, rendered with the message's context and "
        "sandbox (`{{ amount.overdue | money }}`)",
    )


class VendorBlock(BaseModel):
    """A template's `vendor` front matter, by vendor family."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aliyun: AliyunTemplate | None = None

    def families(self) -> dict[str, AliyunTemplate]:
        """The declared vendor families and their blocks (only aliyun so far)."""
        return {} if self.aliyun is None else {"aliyun": self.aliyun}


class RegisteredTemplate(BaseModel):
    """One template as registered in the Aliyun console."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", description="the template's name in the console (for people)")
    text: StrictStr = Field(
        min_length=1, description="the registered text, with ${name} parameters"
    )


class RegisteredTexts(BaseModel):
    """templates/registered/aliyun.yaml: the Aliyun SMS templates as registered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(default=1, ge=1, le=1)
    sign_name: StrictStr = Field(
        min_length=1,
        description="the registered signature (SignName) Aliyun opens every text with, in 【】",
    )
    templates: dict[Annotated[str, StringConstraints(pattern=ALIYUN_CODE)], RegisteredTemplate] = (
        Field(default_factory=dict)
    )

    def sent_text(self, code: str, params: Mapping[str, str]) -> str | None:
        """What Aliyun sends for `code` with these parameters; None when `code` is not here."""
        registered = self.templates.get(code)
        if registered is None:
            return None
        return aliyun_text(self.sign_name, registered.text, params)


def placeholders(text: str) -> list[str]:
    """The parameter names of a registered text, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def aliyun_text(sign_name: str, text: str, params: Mapping[str, str]) -> str:
    """`【sign_name】` and the registered text with each ${name} replaced by params[name] (a name
    without a value stays as it is, so a comparison with the Jinja text fails)."""
    filled = PLACEHOLDER.sub(lambda match: params.get(match.group(1), match.group(0)), text)
    return f"【{sign_name}】{filled}"


def first_difference(one: str, other: str) -> int | None:
    """The index of the first character where the texts differ (the shorter one's length when
    one starts the other); None when they are equal."""
    if one == other:
        return None
    for index, (a, b) in enumerate(zip(one, other, strict=False)):
        if a != b:
            return index
    return min(len(one), len(other))
