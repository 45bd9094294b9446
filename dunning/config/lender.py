"""config/lender.yaml: who the messages come from, in each locale the templates are written in."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from dunning.config._base import ConfigModel
from dunning.errors import ConfigError, ConfigProblem
from dunning.rendering.context import LenderView

Locale = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z][a-z]{3})?-([A-Z]{2}|[0-9]{3})$")
]


class LenderTexts(ConfigModel):
    """The lender's name, contact details and instructions in one language."""

    name: str = Field(min_length=1, max_length=80)
    sms_signature: str = Field(
        min_length=2,
        max_length=20,
        description="the text inside 【】 that opens Chinese SMS (registered with the carrier)",
    )
    phone: str = Field(pattern=r"^\+?[0-9][0-9 ()-]{5,24}$")
    website: str = Field(pattern=r"^https://[^\s]+$", max_length=60)
    payment_instructions: str = Field(min_length=1, max_length=600)
    return_address: list[str] = Field(
        min_length=1,
        max_length=4,
        description="postal lines under the lender's name, printed above the envelope window",
    )

    @field_validator("sms_signature")
    @classmethod
    def _no_brackets(cls, value: str) -> str:
        if any(bracket in value for bracket in "【】[]"):
            raise ValueError("write the signature without brackets; templates add 【】")
        return value

    @field_validator("return_address")
    @classmethod
    def _short_lines(cls, lines: list[str]) -> list[str]:
        for index, line in enumerate(lines):
            if not line.strip() or len(line) > 60:
                raise ValueError(f"line {index + 1} must be 1 to 60 characters")
        return lines


class LenderProfile(ConfigModel):
    """Per-locale lender texts, keyed by locale: `{en-US: {...}, zh-CN: {...}}`."""

    locales: dict[Locale, LenderTexts] = Field(default_factory=dict)

    def view(self, locale: str) -> LenderView:
        """The lender as templates in `locale` see it; ConfigError when that locale is missing."""
        texts = self.locales.get(locale.replace("_", "-"))
        if texts is None:
            known = ", ".join(sorted(self.locales)) or "none"
            raise ConfigError(
                [ConfigProblem("config/lender.yaml", f"locales.{locale}", f"missing (has {known})")]
            )
        return LenderView(
            name=texts.name,
            sms_signature=texts.sms_signature,
            phone=texts.phone,
            website=texts.website,
            payment_instructions=texts.payment_instructions,
            return_address=list(texts.return_address),
        )
