"""config/compliance/<jurisdiction>.yaml: the contact rules of one jurisdiction, as data.

A policy pack holds the contact windows, frequency caps, holiday rule, consent and opt-out
rules, the stops, the dates messages state (pay-by date, the validation notice's dispute
deadline), and what template lint requires there. config/compliance/banned_phrases.yaml
holds the phrases no template may use, in every language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import date, time, timedelta
from functools import cache
from typing import Literal, Self

import holidays as holiday_calendars
from pydantic import Field, ValidationInfo, field_validator, model_validator

from dunning.config._base import ConfigModel
from dunning.domain.calendar import add_business_days
from dunning.rendering._typst import PAPERS, Box, PageFormat, to_mm
from dunning.rendering.context import Deadlines
from dunning.types import Channel, Suppression

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STOPPABLE = (
    Suppression.DISPUTE,
    Suppression.CEASE_REQUEST,
    Suppression.BANKRUPTCY,
    Suppression.DECEASED,
    Suppression.ATTORNEY,
)


class Window(ConfigModel):
    """Contact allowed from `start` (inclusive) to `end` (exclusive), customer's local time."""

    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self

    def contains(self, moment: time) -> bool:
        return self.start <= moment < self.end


class FrequencyCap(ConfigModel):
    """At most `max` messages on `channels` (together) in any `per_days` rolling days."""

    # A message it holds records `frequency_cap:<id>` in outbox_message.suppression (48).
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=34)
    channels: list[Channel] = Field(min_length=1)
    max: int = Field(ge=0)
    per_days: int = Field(ge=1, le=365)


class HolidayRule(ConfigModel):
    country: str = Field(pattern=r"^[A-Z]{2}$", description="holidays package country code")
    subdivision: str | None = None
    no_contact: bool = Field(default=False, description="no collection contact on holidays")


class MessageRules(ConfigModel):
    """`messages`: what every message of the jurisdiction asks for."""

    pay_by_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="messages ask for payment by the run date plus this many calendar days "
        "(the templates' `pay_by`)",
    )


class ValidationNoticeRules(ConfigModel):
    """`validation_notice`: the validation information letters carry (US Reg F 1006.34).

    Its dispute deadline (`validation.dispute_by`) is `dispute_period_days` calendar days after
    the day the customer is assumed to receive the letter, `receipt_business_days` business
    days after it is sent; Saturdays, Sundays and the public holidays of `holiday_calendar`
    are not business days. All three are stated in the pack, never defaulted: the notice states
    the customer's rights. The calendar is its own key, not the pack's `holidays` (a contact
    rule, which a lender may narrow to a state or turn off).
    """

    receipt_business_days: int = Field(
        ge=1, le=30, description="business days from sending to assumed receipt (US: 5)"
    )
    dispute_period_days: int = Field(
        ge=1, le=180, description="calendar days from assumed receipt to the deadline (US: 30)"
    )
    holiday_calendar: str = Field(
        pattern=r"^[A-Z]{2}$",
        description="country (holidays package code) whose public holidays are not business "
        "days (US: the federal legal public holidays of 5 U.S.C. 6103(a))",
    )

    @field_validator("holiday_calendar")
    @classmethod
    def _known_calendar(cls, country: str) -> str:
        if country not in holiday_calendars.list_supported_countries():
            raise ValueError(f"no holiday calendar for country {country!r}")
        return country

    def assumed_receipt(self, sent_on: date) -> date:
        return add_business_days(
            sent_on, self.receipt_business_days, _calendar(self.holiday_calendar)
        )


@cache
def _calendar(country: str) -> holiday_calendars.HolidayBase:
    # One calendar per country for the process: it fills in each year the first time a date
    # of that year is looked up.
    return holiday_calendars.country_holidays(country)


class SmsRules(ConfigModel):
    max_segments: int = Field(default=2, ge=1, le=10)
    max_characters: int | None = Field(
        default=None, ge=1, description="carrier limit on the whole text, e.g. 500 in China"
    )
    signature_required: bool = Field(default=False, description="【signature】 at the start")
    opt_out_phrases: list[str] = Field(
        default_factory=list, description="one of these must appear (e.g. 'Reply STOP', '退订')"
    )


class PushRules(ConfigModel):
    max_payload_bytes: int = Field(default=4096, ge=256)
    forbidden_words: list[str] = Field(
        default_factory=list,
        description="debt wording that must never show on a lock screen (case-insensitive)",
    )


class DisclosureRule(ConfigModel):
    """Phrases a template must contain (any one of them) on these channels."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    channels: list[Channel] = Field(min_length=1)
    any_of: list[str] = Field(min_length=1)
    message: str


class LetterArea(ConfigModel):
    """A window of the envelope on page one, from the sheet's top-left corner (`0.75in`,
    `20mm`)."""

    left: str
    top: str
    width: str
    height: str

    @field_validator("left", "top", "width", "height")
    @classmethod
    def _length(cls, value: str) -> str:
        to_mm(value)  # ValueError naming the value: a length such as 20mm or 0.75in
        return value

    def box(self) -> Box:
        return Box(left=self.left, top=self.top, width=self.width, height=self.height)


class LetterSettings(ConfigModel):
    """How the jurisdiction's letters are laid out: paper and envelope windows (the Typst page
    format, dunning.rendering._typst.PageFormat)."""

    paper: Literal["us-letter", "a4"] = Field(
        description="us-letter: 8.5 x 11 in (US mail houses such as Lob); a4: 210 x 297 mm"
    )
    envelope: str = Field(min_length=1, description="what the letter is folded into")
    recipient: LetterArea = Field(description="the address window: only the recipient shows")
    return_address: LetterArea

    @model_validator(mode="after")
    def _windows_on_the_page(self) -> Self:
        width, height = PAPERS[self.paper]
        for name in ("recipient", "return_address"):
            area: LetterArea = getattr(self, name)
            right = to_mm(area.left) + to_mm(area.width)
            bottom = to_mm(area.top) + to_mm(area.height)
            if right > width or bottom > height:
                raise ValueError(f"{name}: the window does not fit on {self.paper} paper")
        return self

    def page_format(self) -> PageFormat:
        return PageFormat(
            paper=self.paper,
            envelope=self.envelope,
            recipient=self.recipient.box(),
            return_address=self.return_address.box(),
        )


class CompliancePack(ConfigModel):
    jurisdiction: str = Field(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
    name: str
    sources: list[str] = Field(default_factory=list, description="the regulations behind it")
    contact_windows: dict[Channel, Window | None] = Field(
        description="per channel; null means the channel has no time-of-day rule (letters)"
    )
    contact_days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS))
    holidays: HolidayRule | None = None
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    consent_required: list[Channel] = Field(default_factory=list)
    opt_out_keywords: list[str] = Field(
        default_factory=list, description="replies that opt the customer out of SMS"
    )
    opt_in_keywords: list[str] = Field(
        default_factory=list,
        description="replies that lift an opt-out made by reply, where the law allows it; "
        "none: a reply never re-subscribes (fail closed)",
    )
    stops: list[Suppression] = Field(default_factory=lambda: list(STOPPABLE))
    sms: SmsRules = Field(default_factory=SmsRules)
    push: PushRules = Field(default_factory=PushRules)
    disclosures: list[DisclosureRule] = Field(default_factory=list)
    letter: LetterSettings | None = Field(
        default=None,
        description="paper and envelope windows of letters; left out: no letter is laid out",
    )
    letter_required_fields: list[str] = Field(
        default_factory=list,
        description="template variables every letter must use (e.g. the validation notice)",
    )
    messages: MessageRules = Field(default_factory=MessageRules)
    validation_notice: ValidationNoticeRules | None = Field(
        default=None,
        validate_default=True,  # so a pack leaving it out is checked against its letters
        description="build the validation notice (US); left out: messages carry none",
    )

    @field_validator("stops")
    @classmethod
    def _known_stops(cls, stops: list[Suppression]) -> list[Suppression]:
        unknown = [s.value for s in stops if s not in STOPPABLE]
        if unknown:
            allowed = ", ".join(s.value for s in STOPPABLE)
            raise ValueError(f"unknown stop(s) {unknown}; stops are {allowed}")
        # Every stop applies in every jurisdiction: the daily run, the send-time gate, the
        # action dispatcher, imports and legal escalation all apply them all (fail closed). A
        # pack leaving one out would only make a reader believe it is off there.
        missing = [s.value for s in STOPPABLE if s not in stops]
        if missing:
            raise ValueError(
                f"leaves out {missing}: every stop applies in every jurisdiction, so list all "
                f"of {', '.join(s.value for s in STOPPABLE)} (or leave `stops` out)"
            )
        return stops

    @field_validator("validation_notice")
    @classmethod
    def _notice_fits_the_pack(
        cls, notice: ValidationNoticeRules | None, info: ValidationInfo
    ) -> ValidationNoticeRules | None:
        # Fail closed: letters that must print the notice would go out without it (templates
        # show it inside {% if validation %}).
        required = [
            f for f in info.data.get("letter_required_fields", []) if f.startswith("validation.")
        ]
        if notice is None and required:
            raise ValueError(
                f"letter_required_fields requires {', '.join(required)}, but the pack has no "
                "validation_notice to build it: add validation_notice with "
                "receipt_business_days and dispute_period_days"
            )
        return notice

    @field_validator("opt_out_keywords", "opt_in_keywords")
    @classmethod
    def _readable_keywords(cls, keywords: list[str]) -> list[str]:
        empty = [k for k in keywords if not normal_reply(k)]
        if empty:
            raise ValueError(f"keywords {empty} are empty once spacing and punctuation go")
        return keywords

    @model_validator(mode="after")
    def _opt_in_is_not_opt_out(self) -> Self:
        both = sorted(
            {normal_reply(k) for k in self.opt_in_keywords}
            & {normal_reply(k) for k in self.opt_out_keywords}
        )
        if both:
            raise ValueError(f"opt_in_keywords and opt_out_keywords both list {both}")
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [cap.id for cap in self.frequency_caps] + [rule.id for rule in self.disclosures]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"ids must be unique: {duplicated}")
        return self

    def deadlines(self, sent_on: date) -> Deadlines:
        """The pay-by date and (with a validation notice) the dispute deadline of a message
        sent on `sent_on`."""
        dispute_by = None
        notice = self.validation_notice
        if notice is not None:
            dispute_by = notice.assumed_receipt(sent_on) + timedelta(
                days=notice.dispute_period_days
            )
        return Deadlines(
            pay_by=sent_on + timedelta(days=self.messages.pay_by_days), dispute_by=dispute_by
        )

    def window(self, channel: Channel) -> Window | None:
        """The channel's window; a channel the pack does not name is never contacted (None)."""
        return self.contact_windows.get(channel)

    def allows_channel(self, channel: Channel) -> bool:
        return channel in self.contact_windows

    def is_opt_out(self, text: str) -> bool:
        """Whether an inbound reply is an opt-out: the whole message is one of the keywords,
        case, width, spacing and the punctuation around it ignored ("Stop.", " 退订！")."""
        return normal_reply(text) in {normal_reply(k) for k in self.opt_out_keywords}

    def is_opt_in(self, text: str) -> bool:
        """Whether an inbound reply asks to receive SMS again (START, UNSTOP), read as
        is_opt_out reads; always False for a pack without opt_in_keywords."""
        return normal_reply(text) in {normal_reply(k) for k in self.opt_in_keywords}


_AROUND = re.compile(r"^[\W_]+|[\W_]+$")
"""Spacing, punctuation and symbols (emoji) at either end of a reply; CJK characters are word
characters, so 退订 stays whole."""


def letter_formats(packs: Mapping[str, CompliancePack]) -> dict[str, PageFormat]:
    """Each jurisdiction's letter page format (the packs that have a `letter:` setting)."""
    return {j: pack.letter.page_format() for j, pack in packs.items() if pack.letter is not None}


def normal_reply(text: str) -> str:
    """A reply as keywords are compared: NFKC (full-width ＳＴＯＰ is STOP), without the spacing
    and punctuation around it, inner spacing single, upper case."""
    folded = unicodedata.normalize("NFKC", text)
    return re.sub(r"\s+", " ", _AROUND.sub("", folded)).upper()


class BannedPhrase(ConfigModel):
    phrase: str = Field(min_length=1)
    category: Literal["threat", "arrest", "impersonation", "insult", "false_claim"]
    note: str = ""


class BannedPhrases(ConfigModel):
    """Phrases no template may contain, by language (the locale's language subtag)."""

    languages: dict[str, list[BannedPhrase]]
