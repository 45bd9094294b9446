"""Template lint: every message template checked against its jurisdiction's policy pack.

    rules = LintRules.from_project(project)
    findings = Linter(store, rules).lint_all()          # [Finding(template_id, line, rule, ...)]
    if has_errors(findings): ...                          # the CLI exits non-zero

A template's pack is its front matter `jurisdiction` (config/compliance/<jurisdiction>.yaml);
banned phrases come from config/compliance/banned_phrases.yaml, by the locale's language. The
limits are data, never code: RULES below says where each one comes from.

Rendered-output rules (length, disclosures, public push text) render the template with the
sample accounts of its tier (`sample_context`, `sample_dpds`): a typical sending day and the
tier's last day, where amounts and day counts are longest, with the lender of
config/lender.yaml and the dates (pay-by, validation notice) of the template's pack. Line
numbers point at the template file; a finding about rendered text points at the source line
holding the phrase when there is one, else at the first line of the template's body (after
the front matter).

A template with a `vendor.aliyun` block goes out as the text registered with Aliyun under its
code (templates/registered/aliyun.yaml, `compliance.registered`): for each sample account, that
text filled with the block's rendered parameters must be exactly the rendered template
(vendor.drift), and the code and parameter names must be the registered ones (vendor.registered).
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from dunning.compliance.registered import (
    ALIYUN_FILE,
    aliyun_drift,
    aliyun_problems,
    load_registered,
)
from dunning.compliance.sms import sms_length
from dunning.config import BannedPhrases, CompliancePack, DpdRange, load_file
from dunning.config.compliance import letter_formats
from dunning.config.packs import load_packs
from dunning.errors import ConfigError, ConfigProblem, TemplateError
from dunning.rendering import (
    DEMO_LENDER,
    LenderView,
    MessageContext,
    Purpose,
    RegisteredTexts,
    RenderedMessage,
    Renderer,
    TemplateRef,
    TemplateStore,
    context_paths,
    sample_context,
    sample_dpds,
    sample_extra,
)
from dunning.types import Channel

if TYPE_CHECKING:
    from dunning.project import Project

Severity = Literal["error", "warning"]

RULES: dict[str, tuple[Severity, str, str]] = {
    "template.syntax": ("error", "the template does not parse", "Jinja"),
    "template.render": ("error", "the template fails to render a sample account", "Jinja"),
    "pack.missing": (
        "error",
        "no policy pack for the template's jurisdiction",
        "config/compliance/<jurisdiction>.yaml",
    ),
    "vars.undefined": (
        "error",
        "a variable the message context (and the steps of the template's purpose) do not provide",
        "dunning/rendering/context.py",
    ),
    "vars.undeclared": (
        "error",
        "a variable the template uses but its front matter does not list",
        "front matter `variables`",
    ),
    "vars.computed_key": (
        "error",
        "context data read with a key computed while rendering (`customer[key]`): which field "
        "it shows cannot be checked",
        "front matter `variables`",
    ),
    "vars.unused": (
        "warning",
        "a variable the front matter lists but the template does not use",
        "front matter `variables`",
    ),
    "sms.encoding": (
        "warning",
        "UCS-2 only because of punctuation or symbols (halves the characters per part)",
        "GSM 03.38",
    ),
    "sms.segments": ("error", "more parts than the pack allows", "pack `sms.max_segments`"),
    "sms.length": ("error", "more characters than the pack allows", "pack `sms.max_characters`"),
    "sms.signature": (
        "error",
        "the text does not open with the lender's 【signature】",
        "pack `sms.signature_required`, config/lender.yaml `sms_signature`",
    ),
    "sms.opt_out": ("error", "no opt-out instruction", "pack `sms.opt_out_phrases`"),
    "push.payload": (
        "error",
        "the notification payload is too large",
        "pack `push.max_payload_bytes`",
    ),
    "push.public_text": (
        "error",
        "lock-screen text shows an amount, a currency, a name, account data or debt wording",
        "pack `push.forbidden_words`",
    ),
    "disclosure.<id>": ("error", "a required disclosure is missing", "pack `disclosures`"),
    "letter.required_field": (
        "error",
        "a letter does not print a field the pack requires",
        "pack `letter_required_fields`",
    ),
    "letter.paper": (
        "error",
        "the pack lays its letters out on no paper, or on paper its country's mail refuses",
        "pack `letter.paper`",
    ),
    "banned.<category>": (
        "error",
        "a banned phrase in the template or its rendered text",
        "config/compliance/banned_phrases.yaml",
    ),
    "vendor.registered": (
        "error",
        "the template's vendor code is not registered, or its parameters are not the ones the "
        "registered text uses",
        "front matter `vendor`, templates/registered/aliyun.yaml",
    ),
    "vendor.render": (
        "error",
        "a vendor parameter fails to render a sample account",
        "front matter `vendor.<vendor>.params`",
    ),
    "vendor.drift": (
        "error",
        "the registered text with the rendered parameters is not the text the template renders "
        "(the vendor would send something else)",
        "templates/registered/aliyun.yaml",
    ),
}
"""Every rule id: (severity, what it checks, where its limit comes from)."""

PUBLIC_PUSH_FORBIDDEN = (
    "customer.name",
    "customer.greeting_name",
    "account",
    "amount",
    "validation",
    "address",
    "dpd",
    "oldest_due_on",
    "pay_by",
    "promise",
    "plan",
    "instalment",
)
"""Context paths (and everything under them) a push template must not show on a lock screen."""
CURRENCY_SIGNS = ("$", "¥", "￥", "€", "£", "元")
CURRENCY_CODES = ("USD", "CNY", "RMB", "EUR", "GBP")


@dataclass(frozen=True, order=True)
class Finding:
    template_id: str
    line: int
    rule: str
    severity: Severity
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "template": self.template_id,
            "line": self.line,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
        }

    def __str__(self) -> str:
        return f"{self.template_id}:{self.line}: {self.severity}: {self.rule}: {self.message}"


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(finding.severity == "error" for finding in findings)


@dataclass(frozen=True)
class LintRules:
    """What lint checks against: the packs, the banned phrases, and whom samples come from."""

    packs: Mapping[str, CompliancePack]
    banned: BannedPhrases
    lenders: Mapping[str, LenderView] = field(default_factory=dict)
    """The lender by locale (config/lender.yaml); the demo lender for locales it lacks."""
    tiers: Mapping[str, DpdRange] = field(default_factory=dict)
    """Tier DPD ranges (config/strategy.yaml), for the sample DPDs."""
    aliyun: RegisteredTexts | None = None
    """The Aliyun SMS templates as registered (templates/registered/aliyun.yaml), if any."""

    @classmethod
    def from_project(cls, project: Project) -> LintRules:

        banned_path = project.config_dir / "compliance" / "banned_phrases.yaml"
        if not banned_path.is_file():
            shown = str(banned_path.relative_to(project.root))
            raise ConfigError([ConfigProblem(shown, "", "missing: template lint needs it")])
        lenders: dict[str, LenderView] = {}
        if (project.config_dir / "lender.yaml").is_file():
            lenders = {locale: project.lender.view(locale) for locale in project.lender.locales}
        return cls(
            packs=load_packs(project.config_dir, project.root),
            banned=load_file(banned_path, BannedPhrases, project.root),
            lenders=lenders,
            tiers={tier.name: tier.dpd for tier in project.strategy.tiers},
            aliyun=load_registered(project.templates_dir.parent, project.root),
        )

    def lender(self, locale: str) -> LenderView:
        return (
            self.lenders.get(locale) or DEMO_LENDER["zh-CN" if locale.startswith("zh") else "en-US"]
        )

    def sample_dpds(self, tier: str) -> tuple[int, ...]:
        dpd_range = self.tiers.get(tier)
        if dpd_range is None:
            return sample_dpds(tier)
        return sample_dpds(tier, dpd_range.min, dpd_range.max)


@dataclass(frozen=True)
class Sample:
    """One sample account rendered with a template."""

    dpd: int
    context: MessageContext
    message: RenderedMessage


class Linter:
    """Checks templates of a store against LintRules; one Linter can lint many templates."""

    def __init__(
        self, store: TemplateStore, rules: LintRules, renderer: Renderer | None = None
    ) -> None:
        self.store = store
        self.rules = rules
        self.renderer = renderer or Renderer(store, letter_formats(rules.packs))

    def lint_all(self, template_ids: Sequence[str] | None = None) -> list[Finding]:
        """Findings for the given templates (all when None), sorted by template and line;
        TemplateError when an id does not exist."""
        refs = (
            [self.store.get(template_id) for template_id in template_ids]
            if template_ids
            else self.store.all()
        )
        return sorted(finding for ref in refs for finding in self.lint(ref))

    def contexts(self, ref: TemplateRef) -> list[tuple[int, MessageContext]]:
        """The sample accounts a template is checked (and previewed) with, with the variables
        the steps of its purpose add (a plan's terms, a broken promise)."""
        meta = ref.metadata
        pack = self.rules.packs.get(meta.jurisdiction)
        contexts = []
        for dpd in self.rules.sample_dpds(ref.tier):
            context = sample_context(
                ref.locale,
                ref.tier,
                jurisdiction=meta.jurisdiction,
                dpd=dpd,
                lender=self.rules.lender(ref.locale),
                # The pack's dates, as the daily run gives them: with no validation_notice
                # there, `validation` is None here too.
                deadlines=pack.deadlines if pack is not None else None,
            )
            extra = sample_extra(meta.purpose, context)
            contexts.append((dpd, dataclasses.replace(context, extra=extra) if extra else context))
        return contexts

    def samples(self, ref: TemplateRef) -> list[Sample]:
        """The template rendered with each sample account; TemplateError if it fails."""
        return [
            Sample(dpd, context, self.renderer.render(ref, context))
            for dpd, context in self.contexts(ref)
        ]

    def lint(self, ref: TemplateRef) -> list[Finding]:
        check = _Check(ref)
        pack = self.rules.packs.get(ref.metadata.jurisdiction)
        if pack is None:
            check.error(
                "pack.missing",
                f"no policy pack for jurisdiction {ref.metadata.jurisdiction!r} "
                f"(config/compliance/{ref.metadata.jurisdiction}.yaml): nothing can be checked "
                "or sent",
                check.header_line("jurisdiction"),
            )
        try:
            used = self.renderer.variable_lines(ref)
            self.renderer.compile(ref)
        except TemplateError as exc:
            check.error("template.syntax", _without_id(ref, exc), _error_line(exc))
            return check.findings
        _check_variables(check, used)
        for path, line in sorted(
            self.renderer.computed_subscripts(ref).items(), key=lambda item: item[1]
        ):
            check.error(
                "vars.computed_key",
                f"{path}[...] picks what to show with a key computed while rendering, so lint "
                f"cannot check which data the message shows: name the field ({path}.<field>) or "
                "loop over the list",
                line,
            )
        samples: list[Sample] = []
        for dpd, context in self.contexts(ref):
            try:
                samples.append(Sample(dpd, context, self.renderer.render(ref, context)))
            except TemplateError as exc:
                check.error(
                    "template.render",
                    f"with the sample account at DPD {dpd}: {_without_id(ref, exc)}",
                    _error_line(exc),
                )
                break
        if pack is not None:
            if ref.channel is Channel.SMS and samples:
                _check_sms(check, pack, samples)
            if ref.channel is Channel.PUSH:
                _check_push(check, pack, used, samples)
            if ref.channel is Channel.LETTER:
                _check_letter(check, pack, used)
            if samples:
                _check_disclosures(check, pack, samples)
        _check_banned(check, self.rules.banned, samples)
        if ref.metadata.vendor is not None:
            _check_vendor(check, self.renderer, self.rules.aliyun, samples)
        return sorted(set(check.findings))


# --- helpers ------------------------------------------------------------------------------


class _Check:
    """Collects one template's findings and finds lines in its source."""

    def __init__(self, ref: TemplateRef) -> None:
        self.ref = ref
        self.source = ref.source
        self.findings: list[Finding] = []
        self.last_line = len(self.source.splitlines()) or 1
        header_end = re.search(r"---#\}", self.source)
        self.body_line = self.line_at(header_end.end()) + 1 if header_end else 1

    def error(self, rule: str, message: str, line: int | None = None) -> None:
        self.add(rule, "error", message, line)

    def warning(self, rule: str, message: str, line: int | None = None) -> None:
        self.add(rule, "warning", message, line)

    def add(self, rule: str, severity: Severity, message: str, line: int | None) -> None:
        shown = min(max(line if line is not None else self.body_line, 1), self.last_line)
        self.findings.append(Finding(self.ref.id, shown, rule, severity, message))

    def line_at(self, offset: int) -> int:
        return self.source.count("\n", 0, offset) + 1

    def find(self, pattern: re.Pattern[str]) -> int | None:
        """Line of the first match in the template body (or anywhere, failing that)."""
        body_start = _offset_of_line(self.source, self.body_line)
        match = pattern.search(self.source, body_start) or pattern.search(self.source)
        return self.line_at(match.start()) if match else None

    def header_line(self, key: str) -> int:
        match = re.search(rf"^{re.escape(key)}\s*:", self.source, re.MULTILINE)
        return self.line_at(match.start()) if match else 1

    def declared_line(self, path: str) -> int:
        header = self.source[: _offset_of_line(self.source, self.body_line)]
        match = re.search(rf"(?<![\w.]){re.escape(path)}(?![\w.])", header)
        return self.line_at(match.start()) if match else self.header_line("variables")


def _offset_of_line(text: str, line: int) -> int:
    offset = 0
    for _ in range(line - 1):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset


def _error_line(exc: TemplateError) -> int | None:
    match = re.search(r": line (\d+)", str(exc))
    return int(match.group(1)) if match else None


def _without_id(ref: TemplateRef, exc: TemplateError) -> str:
    text = str(exc)
    prefix = f"{ref.id}: "
    text = text[len(prefix) :] if text.startswith(prefix) else text
    return re.sub(r"^line \d+: ", "", text)


_LATIN = re.compile(r"[A-Za-z0-9\u00c0-\u024f]")


def _is_latin(phrase: str) -> bool:
    letters = [char for char in phrase if char.isalnum()]
    return bool(letters) and all(
        char.isascii() or unicodedata.name(char, "").startswith("LATIN") for char in letters
    )


def phrase_pattern(phrase: str, *, whole_word: bool = True) -> re.Pattern[str]:
    """A case-insensitive pattern for a phrase of a word list.

    Latin-script phrases match at word boundaries (the end boundary only with `whole_word`:
    banned phrases also match longer words, "arrest" finds "arrested"), with any whitespace,
    line breaks included, between their words. Other phrases (Chinese, symbols) match anywhere.
    """
    body = r"\s+".join(re.escape(word) for word in phrase.split())
    if not _is_latin(phrase):
        return re.compile(body, re.IGNORECASE)
    edge = r"A-Za-z0-9\u00c0-\u024f"
    end = rf"(?![{edge}])" if whole_word else ""
    start = rf"(?<![{edge}])" if _LATIN.match(phrase[0]) else ""
    return re.compile(f"{start}{body}{end}", re.IGNORECASE)


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).casefold()


def _provided(path: str, purpose: Purpose) -> bool:
    """Whether the message context (with the purpose's step variables) provides `path`, or it
    reads into a plain value it provides (`customer.name.upper`)."""
    paths = context_paths(purpose)
    if path in paths:
        return True
    parts = path.split(".")
    for end in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in paths:
            return not any(other.startswith(prefix + ".") for other in paths)
    return False


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == root or path.startswith(root + ".") for root in roots)


# --- the rules ----------------------------------------------------------------------------


def _check_variables(check: _Check, used: Mapping[str, int]) -> None:
    meta = check.ref.metadata
    for path, line in sorted(used.items(), key=lambda item: item[1]):
        if not _provided(path, meta.purpose):
            check.error(
                "vars.undefined",
                f"{path!r} is not a message context variable (see dunning/rendering/context.py)",
                line,
            )
        elif not meta.declares(path):
            check.error(
                "vars.undeclared",
                f"{path!r} is used but not listed in front matter `variables`",
                line,
            )
    for declared in meta.variables:
        if not _provided(declared, meta.purpose):
            check.error(
                "vars.undefined",
                f"front matter declares {declared!r}, which the message context does not provide",
                check.declared_line(declared),
            )
        elif not any(_under(path, [declared]) for path in used):
            check.warning(
                "vars.unused",
                f"front matter declares {declared!r} but the template does not use it",
                check.declared_line(declared),
            )


def _check_sms(check: _Check, pack: CompliancePack, samples: Sequence[Sample]) -> None:
    rules, jurisdiction = pack.sms, pack.jurisdiction
    lengths = [(sample, sms_length(sample.message.text)) for sample in samples]
    for _, length in lengths:
        if length.avoidable_ucs2:
            shown = " ".join(f"{char!r} (U+{ord(char):04X})" for char in length.non_gsm)
            line = check.find(re.compile("|".join(re.escape(c) for c in length.non_gsm)))
            check.warning(
                "sms.encoding",
                f"goes as UCS-2 (70 characters a part, not 160) only because of {shown}; "
                "use plain ASCII punctuation",
                line,
            )
            break
    sample, worst = max(lengths, key=lambda item: (item[1].segments, item[1].units))
    if worst.segments > rules.max_segments:
        check.error(
            "sms.segments",
            f"{worst.segments} parts ({worst.describe()}) with the sample account at DPD "
            f"{sample.dpd}; the {jurisdiction} pack allows {rules.max_segments}",
        )
    sample, longest = max(lengths, key=lambda item: item[1].characters)
    if rules.max_characters is not None and longest.characters > rules.max_characters:
        check.error(
            "sms.length",
            f"{longest.characters} characters with the sample account at DPD {sample.dpd}; the "
            f"{jurisdiction} pack allows {rules.max_characters}",
        )
    text, context = samples[0].message.text, samples[0].context
    if rules.signature_required:
        expected = f"【{context.lender.sms_signature}】"
        opening = re.match(r"【[^【】]+】", text)
        if opening is None:
            check.error(
                "sms.signature",
                f"the {jurisdiction} pack requires the text to open with the lender's signature "
                f"in 【】 ({expected} here)",
            )
        elif opening.group(0) != expected:
            check.error(
                "sms.signature",
                f"opens with {opening.group(0)} but the lender's registered signature is "
                f"{expected} (use {{{{ lender.sms_signature }}}})",
                check.find(re.compile(re.escape(opening.group(0)))),
            )
    if rules.opt_out_phrases and not any(
        _normal(phrase) in _normal(text) for phrase in rules.opt_out_phrases
    ):
        wanted = " or ".join(repr(phrase) for phrase in rules.opt_out_phrases)
        check.error(
            "sms.opt_out",
            f"no opt-out instruction: the {jurisdiction} pack requires {wanted}",
            check.last_line,
        )


def _check_vendor(
    check: _Check, renderer: Renderer, aliyun: RegisteredTexts | None, samples: Sequence[Sample]
) -> None:
    """The registered text, filled with the parameters rendered for each sample account, must
    be exactly the text the template renders for it: that is what the vendor sends."""
    ref = check.ref
    problems = aliyun_problems(ref, aliyun)
    for key, reason in problems:
        check.error("vendor.registered", f"{key}: {reason}", _header_key_line(check, _leaf(key)))
    for sample in samples:
        try:
            params = renderer.vendor_params(ref, sample.context)
        except TemplateError as exc:
            check.error(
                "vendor.render",
                f"with the sample account at DPD {sample.dpd}: {_without_id(ref, exc)}",
                _header_key_line(check, "params"),
            )
            return
        if problems or aliyun is None:
            continue  # nothing registered to compare with: reported above
        body = sample.message.text
        position = aliyun_drift(ref, aliyun, params.get("aliyun", {}), body)
        if position is not None:
            code = ref.metadata.vendor.aliyun.template_code  # type: ignore[union-attr]
            sent = aliyun.sent_text(code, params.get("aliyun", {})) or ""
            check.error(
                "vendor.drift",
                f"{code}: with the sample account at DPD {sample.dpd}, Aliyun would send other "
                f"text than the template renders (the registered text in templates/{ALIYUN_FILE}"
                f", 【sign_name】 first, filled with the rendered vendor.aliyun.params): they "
                f"differ from character {position + 1}: registered {_around(sent, position)} "
                f"but the template {_around(body, position)}",
                _header_key_line(check, "template_code"),
            )
            return


def _header_key_line(check: _Check, key: str) -> int:
    """The line of a (possibly nested) front matter key; the `vendor` line failing that."""
    header = check.source[: _offset_of_line(check.source, check.body_line)]
    for wanted in (key, "vendor"):
        match = re.search(rf"^[ \t]*{re.escape(wanted)}[ \t]*:", header, re.MULTILINE)
        if match:
            return check.line_at(match.start())
    return 1


def _leaf(key: str) -> str:
    """The front matter key a dotted path ends in, to find its line (`params`, `amount`)."""
    return key.rsplit(".", 1)[-1]


def _around(text: str, position: int) -> str:
    """A few characters of a sample's text from `position` (sample data only, never a real
    customer's: lint renders sample accounts)."""
    shown = text[max(position - 8, 0) : position + 16]
    if not shown:
        return "ends there"
    return f"{'…' if position > 8 else ''}{shown!r}{'…' if position + 16 < len(text) else ''}"


def push_payload(message: RenderedMessage) -> bytes:
    """The notification as an APNs-style JSON payload, the way its size is counted."""

    alert = {"title": message.subject or "", "body": message.text}
    return json.dumps({"aps": {"alert": alert}}, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )


def _amount_digits(context: MessageContext) -> set[str]:
    values: list[Decimal] = [
        context.amount.overdue,
        context.amount.total,
        context.amount.principal,
        context.amount.interest,
        context.amount.fees,
        context.amount.penalty,
    ]
    if context.validation is not None:
        values += [context.validation.current_amount, context.validation.amount_on_itemization_date]
    return {str(int(abs(value))) for value in values if abs(value) >= 10}


def _check_push(
    check: _Check, pack: CompliancePack, used: Mapping[str, int], samples: Sequence[Sample]
) -> None:
    for path, line in sorted(used.items(), key=lambda item: item[1]):
        if _under(path, PUBLIC_PUSH_FORBIDDEN):
            check.error(
                "push.public_text",
                f"uses {path!r}: lock screens are public, a push shows no name, amount, date or "
                "account detail",
                line,
            )
    limit = pack.push.max_payload_bytes
    words = [(word, phrase_pattern(word)) for word in pack.push.forbidden_words]
    for sample in samples:
        size = len(push_payload(sample.message))
        if size > limit:
            check.error(
                "push.payload",
                f"the payload is {size} bytes with the sample account at DPD {sample.dpd}; the "
                f"{pack.jurisdiction} pack allows {limit}",
            )
        public = f"{sample.message.subject or ''}\n{sample.message.text}"
        context = sample.context
        for sign in CURRENCY_SIGNS:
            if sign in public:
                check.error(
                    "push.public_text",
                    f"shows the currency sign {sign!r} on the lock screen",
                    check.find(re.compile(re.escape(sign))),
                )
        for code in CURRENCY_CODES:
            pattern = phrase_pattern(code)
            if pattern.search(public):
                check.error(
                    "push.public_text",
                    f"shows the currency code {code!r} on the lock screen",
                    check.find(pattern),
                )
        runs = ["".join(re.findall(r"\d", run)) for run in re.findall(r"\d[\d,.\s']*", public)]
        if any(digits in run for digits in _amount_digits(context) for run in runs):
            check.error("push.public_text", "shows an amount on the lock screen")
        for name in {context.customer.name, context.customer.greeting_name}:
            if name and name in public:
                check.error("push.public_text", "shows the customer's name on the lock screen")
        for word, pattern in words:
            if pattern.search(public):
                check.error(
                    "push.public_text",
                    f"{word!r} on the lock screen: the {pack.jurisdiction} pack forbids it in "
                    "push text (it reveals the debt)",
                    check.find(pattern),
                )


MAIL_PAPER = {"US": "us-letter", "CN": "a4"}
"""The paper a country's letters must be on: US mail houses (Lob) take US Letter only, and CN
letters go in DL/C5 window envelopes (A4). Jurisdictions not listed may use either."""


def _check_letter(check: _Check, pack: CompliancePack, used: Mapping[str, int]) -> None:
    country = pack.jurisdiction.split("-")[0]
    if pack.letter is None:
        check.error(
            "letter.paper",
            f"the {pack.jurisdiction} pack has no `letter:` setting (paper and envelope "
            "windows): its letters cannot be laid out",
            check.header_line("jurisdiction"),
        )
    elif country in MAIL_PAPER and pack.letter.paper != MAIL_PAPER[country]:
        check.error(
            "letter.paper",
            f"{country} letters go on {MAIL_PAPER[country]} paper, but the {pack.jurisdiction} "
            f"pack lays them out on {pack.letter.paper} (config/compliance/"
            f"{pack.jurisdiction}.yaml `letter.paper`)",
            check.header_line("jurisdiction"),
        )
    for required in pack.letter_required_fields:
        if required not in used:
            check.error(
                "letter.required_field",
                f"does not print {required!r}, which every {pack.jurisdiction} letter must "
                "(pack letter_required_fields)",
            )


def _check_disclosures(check: _Check, pack: CompliancePack, samples: Sequence[Sample]) -> None:
    channel = check.ref.channel
    for rule in pack.disclosures:
        if channel not in rule.channels:
            continue
        for sample in samples:
            text = _normal(f"{sample.message.subject or ''} {sample.message.text}")
            if not any(_normal(phrase) in text for phrase in rule.any_of):
                wanted = " or ".join(repr(phrase) for phrase in rule.any_of)
                check.error(f"disclosure.{rule.id}", f"missing {wanted}: {rule.message}")
                break


def _check_banned(check: _Check, banned: BannedPhrases, samples: Sequence[Sample]) -> None:
    language = check.ref.locale.split("-")[0]
    rendered = [f"{s.message.subject or ''}\n{s.message.text}" for s in samples]
    for item in banned.languages.get(language, []):
        pattern = phrase_pattern(item.phrase, whole_word=False)
        why = f"{item.category}: {item.note}" if item.note else item.category
        rule = f"banned.{item.category}"
        hits = [check.line_at(match.start()) for match in pattern.finditer(check.source)]
        for line in dict.fromkeys(hits):
            check.error(rule, f"banned phrase {item.phrase!r} ({why})", line)
        if not hits and any(pattern.search(text) for text in rendered):
            check.error(
                rule,
                f"banned phrase {item.phrase!r} ({why}) in the rendered text: it comes from a "
                "variable's value (config/lender.yaml?)",
                1,
            )
