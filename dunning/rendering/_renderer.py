"""Rendering a template with a MessageContext: sandboxed Jinja, strict variables, locale filters.

What each channel's template yields:

- **sms**: the whole template is the text. Its lines are joined into one paragraph (with a
  space, or nothing next to Chinese characters) and trailing whitespace is dropped.
- **push**: two Jinja blocks, `{% block title %}...{% endblock %}` and
  `{% block body %}...{% endblock %}`; anything outside them is ignored. Each is shaped like SMS.
- **letter**: Typst markup (`.typ`, see `_typst`), every `{{ ... }}` output escaped for Typst.
  The renderer makes it one self-contained Typst source, the record of what is printed: a
  preamble with the page format of the template's jurisdiction (its policy pack's `letter:`
  setting) and the letter's date, the layout modules it imports spliced in, then its markup.
  `text` is the letter's visible text.

Filters: `money` (Decimal in the account's currency, formatted for the customer's locale:
`{{ amount.overdue | money }}`), `date` (`{{ pay_by | date }}`, or `date('short')`; Babel
formats full/long/medium/short or a CLDR pattern, in the customer's locale; default long) and
`mask` (`****1234`).

Errors become TemplateError naming the template id and line. They never carry context values
(PII): names appear only when they are spelled in the template itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from types import TracebackType
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    UndefinedError,
    nodes,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import concat, pass_context

from dunning.errors import TemplateError
from dunning.rendering._formatting import FilterError, format_date, format_money, mask
from dunning.rendering._printable import (
    CheckedCodeGenerator,
    check_percent_operands,
    checked_filters,
    defined,
    operand,
    printable,
    python_repr_in,
    refuse_str_format,
)
from dunning.rendering._store import TemplateRef, TemplateStore
from dunning.rendering._text import one_paragraph
from dunning.rendering._typst import PageFormat, escape_typst, splice_modules, typst_to_text
from dunning.rendering._vendor import PLACEHOLDER
from dunning.rendering.context import (
    AccountView,
    AddressView,
    Amounts,
    CustomerView,
    LenderView,
    MessageContext,
    ValidationNotice,
)
from dunning.types import Channel

PUSH_BLOCKS = ("title", "body")
CSS_MARKER = "data-dunning-css"


@dataclass(frozen=True)
class RenderedMessage:
    subject: str | None
    """Push title; None for sms and letters."""
    text: str
    """SMS text, push body, or the plain-text version of a letter."""
    html: str | None
    """Case packet documents: the full HTML document with its CSS in a <style> element; else
    None."""
    typst: str | None = None
    """Letters: the self-contained Typst source (preamble, layout, markup); else None."""


@pass_context
def _money(context: Context, value: Decimal | int, currency: str | None = None) -> str:
    defined(value)
    return format_money(value, currency or context["account"].currency, context["customer"].locale)


@pass_context
def _date(context: Context, value: date, format: str = "long") -> str:
    defined(value)
    return format_date(value, format, context["customer"].locale)


_VIEW_FIELDS: dict[type, frozenset[str]] = {
    view: frozenset(item.name for item in fields(view))
    for view in (
        AccountView,
        AddressView,
        Amounts,
        CustomerView,
        LenderView,
        MessageContext,
        ValidationNotice,
    )
}


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with a fast path for the context's own data fields.

    The sandbox's checks cost a few microseconds per attribute, half an SMS render; a field
    of one of the frozen context views is plain data and always safe to read.
    """

    code_generator_class = CheckedCodeGenerator
    intercepted_binops = frozenset({"%"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        names = _VIEW_FIELDS.get(type(obj))
        if names is not None and attr in names:
            return True
        return bool(super().is_safe_attribute(obj, attr, value))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            check_percent_operands(left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        return None if super().wrap_str_format(value) is None else refuse_str_format

    @staticmethod
    def operand(value: Any) -> Any:
        """Each operand of `~` (CheckedCodeGenerator): checked like `{{ }}` output."""
        return operand(value)


def _typst_output(value: Any) -> Any:
    """The Typst environment's finalize hook: checked like any output, then escaped, so no value
    (a customer's name, an address line, a filter's result) can become Typst markup."""
    value = printable(value)
    return escape_typst(value if type(value) is str else str(value))


def _environment(*, autoescape: bool, typst: bool = False) -> ImmutableSandboxedEnvironment:
    # Immutable: templates must not change the lists and dicts they are given (they are shared
    # with the caller). No loader: a template cannot include another one.
    # finalize, the filters, `~`, `%` and str.format only let text, numbers, dates and money
    # into a message (_printable).
    env = _Environment(
        undefined=StrictUndefined,
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
        finalize=_typst_output if typst else printable,
    )
    env.filters.update({"money": _money, "date": _date, "mask": mask})
    env.filters = checked_filters(env.filters)
    return env


_CONTEXT_FIELDS = tuple(item.name for item in fields(MessageContext) if item.name != "extra")


def template_variables(context: MessageContext) -> dict[str, Any]:
    """The names a template sees: the context's fields and, beneath them, its `extra` entries.

    The views are passed as they are (frozen dataclasses), not copied to dicts: asdict() would
    cost more than the rendering itself. A step's extra variables cannot shadow a core name.
    """
    core = {name: getattr(context, name) for name in _CONTEXT_FIELDS}
    return {**context.extra, **core} if context.extra else core


class Renderer:
    """Compiles each template once (per content hash) and renders it with a MessageContext."""

    def __init__(
        self, store: TemplateStore, letter_formats: Mapping[str, PageFormat] | None = None
    ) -> None:
        """`letter_formats`: each jurisdiction's page format (its policy pack's `letter:`,
        dunning.config.compliance.letter_formats); without one a letter of that jurisdiction
        cannot be laid out (TemplateError)."""
        self.store = store
        self._letter_formats = letter_formats
        self._text_env = _environment(autoescape=False)
        self._html_env = _environment(autoescape=True)
        self._typst_env = _environment(autoescape=False, typst=True)
        self._compiled: dict[str, tuple[str, Template]] = {}
        self._params: dict[str, tuple[str, dict[tuple[str, str], Template]]] = {}

    def render(self, ref: TemplateRef, context: MessageContext) -> RenderedMessage:
        template = self.compile(ref)
        variables = template_variables(context)
        try:
            # The render functions are called directly (template.render would too), so every
            # channel's errors carry the generated code's frames, which _template_line maps to
            # the template file's lines.
            scope = template.new_context(variables)
            if ref.channel is Channel.PUSH:
                title, body = (concat(template.blocks[name](scope)) for name in PUSH_BLOCKS)
                output = f"{title}\n{body}"
            else:
                output = concat(template.root_render_func(scope))
        except Exception as exc:
            raise _render_error(ref, template, exc) from None
        if python_repr_in(output):
            # The last line of defence (_printable): a Python object made text some other way.
            raise TemplateError(
                f"{ref.id}: the output shows a Python method, function or object as text: "
                "only text, numbers, dates and money can go into a message"
            )
        if ref.channel is Channel.PUSH:
            return RenderedMessage(one_paragraph(title), one_paragraph(body), None)
        if ref.channel is Channel.LETTER:
            page = self.page_format(ref)
            source = page.preamble(context.as_of) + splice_modules(output, dict(ref.modules))
            return RenderedMessage(None, typst_to_text(output), None, typst=source)
        return RenderedMessage(None, one_paragraph(output), None)

    def page_format(self, ref: TemplateRef) -> PageFormat:
        """The page format of a letter template's jurisdiction; TemplateError without one."""
        page = (self._letter_formats or {}).get(ref.metadata.jurisdiction)
        if page is None:
            raise TemplateError(
                f"{ref.id}: the {ref.metadata.jurisdiction} policy pack has no letter: setting "
                "(paper and envelope windows), so its letters cannot be laid out"
            )
        return page

    def vendor_params(self, ref: TemplateRef, context: MessageContext) -> dict[str, dict[str, str]]:
        """Each vendor family's parameters (front matter `vendor.<family>.params`), rendered
        with the context as the body is, in the same sandbox; {} without a vendor block.

        A parameter's text is shaped like SMS text (one line, stripped). TemplateError names
        the template and the parameter (`vendor.aliyun.params.amount`), never a value.
        """
        compiled = self.compile_params(ref)
        if not compiled:
            return {}
        variables = template_variables(context)
        rendered: dict[str, dict[str, str]] = {}
        for (family, name), template in compiled.items():
            where = f"{ref.id}: vendor.{family}.params.{name}"
            try:
                output = concat(template.root_render_func(template.new_context(variables)))
            except Exception as exc:
                raise _render_error(ref, template, exc, where=where) from None
            if python_repr_in(output):
                raise TemplateError(
                    f"{where}: the output shows a Python method, function or object as text"
                )
            value = one_paragraph(output)
            if PLACEHOLDER.search(value):
                # Aliyun would read it as a parameter of its own.
                raise TemplateError(f"{where}: the output holds a ${{...}} parameter")
            rendered.setdefault(family, {})[name] = value
        return rendered

    def render_vendor(
        self, ref: TemplateRef, context: MessageContext
    ) -> dict[str, dict[str, Any]] | None:
        """What the outbox keeps for the gateway (outbox_message.vendor): by vendor family, the
        template's code there and its rendered parameters; None without a vendor block."""
        vendor = ref.metadata.vendor
        if vendor is None or not vendor.families():
            return None
        params = self.vendor_params(ref, context)
        return {
            family: {"template_code": block.template_code, "params": params.get(family, {})}
            for family, block in vendor.families().items()
        }

    def compile_params(self, ref: TemplateRef) -> dict[tuple[str, str], Template]:
        """The compiled `vendor.<family>.params` texts by (family, name); TemplateError for a
        syntax error, naming the parameter."""
        cached = self._params.get(ref.id)
        if cached is not None and cached[0] == ref.content_hash:
            return cached[1]
        compiled: dict[tuple[str, str], Template] = {}
        vendor = ref.metadata.vendor
        for family, block in (vendor.families() if vendor else {}).items():
            for name, text in block.params.items():
                try:
                    code = self._text_env.compile(text, name=ref.id, filename=str(ref.path))
                except TemplateSyntaxError as exc:
                    raise TemplateError(
                        f"{ref.id}: vendor.{family}.params.{name}: syntax error: {exc.message}"
                    ) from None
                env = self._text_env
                compiled[(family, name)] = env.template_class.from_code(
                    env, code, env.make_globals(None)
                )
        self._params[ref.id] = (ref.content_hash, compiled)
        return compiled

    def compile(self, ref: TemplateRef) -> Template:
        """The compiled template; TemplateError for syntax errors and missing push blocks."""
        cached = self._compiled.get(ref.id)
        if cached is not None and cached[0] == ref.content_hash:
            return cached[1]
        env = self._env(ref)
        try:
            code = env.compile(ref.source, name=ref.id, filename=str(ref.path))
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"{ref.id}: line {exc.lineno}: syntax error: {exc.message}"
            ) from None
        template = env.template_class.from_code(env, code, env.make_globals(None))
        if ref.channel is Channel.PUSH and not all(b in template.blocks for b in PUSH_BLOCKS):
            raise TemplateError(
                f"{ref.id}: a push template needs {{% block title %}} and {{% block body %}}"
            )
        self._compiled[ref.id] = (ref.content_hash, template)
        return template

    def _env(self, ref: TemplateRef) -> ImmutableSandboxedEnvironment:
        if ref.path.suffix == ".typ":
            return self._typst_env
        return self._html_env if ref.path.suffix == ".html" else self._text_env

    def variables_used(self, ref: TemplateRef) -> set[str]:
        """Dotted context paths the template reads (`amount.overdue`, `validation`, ...).

        Names the template assigns itself (loop variables, `set`) are left out.
        """
        return set(self.variable_lines(ref))

    def variable_lines(self, ref: TemplateRef) -> dict[str, int]:
        """Each path of variables_used() with the first line of the file that reads it."""
        return self._read_lines(ref)[0]

    def computed_subscripts(self, ref: TemplateRef) -> dict[str, int]:
        """Context paths read with a key computed while rendering (`customer[key]`), each with
        the first line that does it: which field such a read shows is unknown until then."""
        return self._read_lines(ref)[1]

    def _read_lines(self, ref: TemplateRef) -> tuple[dict[str, int], dict[str, int]]:
        env = self._env(ref)
        try:
            tree = env.parse(ref.source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"{ref.id}: line {exc.lineno}: syntax error: {exc.message}"
            ) from None
        assigned = {
            node.name for node in tree.find_all(nodes.Name) if node.ctx in ("store", "param")
        }
        reads = list(_reads(tree))
        vendor = ref.metadata.vendor
        for family, block in (vendor.families() if vendor else {}).items():
            for name, text in block.params.items():
                try:
                    param_tree = self._text_env.parse(text)
                except TemplateSyntaxError as exc:
                    raise TemplateError(
                        f"{ref.id}: vendor.{family}.params.{name}: syntax error: {exc.message}"
                    ) from None
                # A parameter's reads count as the template's, at the header line holding it.
                line = _line_of(ref.source, text)
                reads += [(path, line, computed) for path, _, computed in _reads(param_tree)]
        lines: dict[str, int] = {}
        computed: dict[str, int] = {}
        for path, line, is_computed in reads:
            if path.split(".")[0] in assigned:
                continue
            lines[path] = min(line, lines.get(path, line))
            if is_computed:
                computed[path] = min(line, computed.get(path, line))
        return lines, computed


def _static_step(node: nodes.Node) -> tuple[str, nodes.Node] | None:
    """The field name and the subscripted node of `x.name` or `x['name']`; None otherwise."""
    if isinstance(node, nodes.Getattr):
        return node.attr, node.node
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.arg.value, node.node
    return None


def _chain_base(node: nodes.Node) -> tuple[list[str], nodes.Node]:
    """The static steps of a chain, outermost first, and the node they start from."""
    steps: list[str] = []
    while (step := _static_step(node)) is not None:
        steps.append(step[0])
        node = step[1]
    return steps, node


def _static_path(node: nodes.Node) -> str | None:
    """`customer.name` for a chain of static steps from a loaded name; None otherwise."""
    steps, base = _chain_base(node)
    if isinstance(base, nodes.Name) and base.ctx == "load":
        return ".".join([base.name, *reversed(steps)])
    return None


def _reads(node: nodes.Node) -> Iterator[tuple[str, int, bool]]:
    """(path, line, computed) for every context path an expression tree reads; computed when
    the path is subscripted with a key computed while rendering (`customer[lender.name]`).

    A chain of static steps (`amount.overdue`, `amount['overdue']`) is one path. Anything else in
    a chain (a computed or numeric subscript, a call, a filter, a literal) ends it: what lies
    beneath is walked on its own, once, so every node is visited once.
    """
    path = _static_path(node)
    if path is not None:
        yield path, node.lineno, False
        return
    base = _chain_base(node)[1]
    if isinstance(base, nodes.Getitem) and not isinstance(base.arg, nodes.Const | nodes.Slice):
        subscripted = _static_path(base.node)
        if subscripted is not None:
            yield subscripted, base.lineno, True
        else:
            yield from _reads(base.node)
        yield from _reads(base.arg)
        return
    for child in base.iter_child_nodes():
        yield from _reads(child)


def _line_of(source: str, text: str) -> int:
    """The line of `source` where `text` first appears (1 when it does not)."""
    found = source.find(text)
    return source.count("\n", 0, found) + 1 if found >= 0 else 1


def _with_css(html: str, css: str) -> str:
    style = f"<style {CSS_MARKER}>\n{css}\n</style>\n"
    head_end = html.find("</head>")
    return html[:head_end] + style + html[head_end:]


def _template_line(template: Template, tb: TracebackType | None) -> int | None:
    """The template file's line of the innermost template frame of a traceback.

    A frame of the template's generated Python code has a line of that code (line 34 for line
    12 of a push template): the template's debug info maps it back to the file's line. The
    front matter is a Jinja comment, so the file's lines are the template's lines.
    """
    line = None
    while tb is not None:
        if tb.tb_frame.f_globals.get("__jinja_template__") is template:
            line = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    return line


def _spelled_in(ref: TemplateRef, name: str) -> bool:
    return name.isidentifier() and re.search(rf"\b{re.escape(name)}\b", ref.source) is not None


def _render_error(
    ref: TemplateRef, template: Template, exc: Exception, *, where: str | None = None
) -> TemplateError:
    if where is None:
        line = _template_line(template, exc.__traceback__)
        where = f"{ref.id}: line {line}" if line is not None else ref.id
    if isinstance(exc, UndefinedError):
        # Messages look like "'x' is undefined" or "'T object' has no attribute 'x'"; x may
        # come from a context value (a dynamic subscript), so it is shown only when the
        # template spells it.
        if " has no element " in str(exc):
            # A subscript ([1], [key]) that finds nothing; the key may be a context value.
            return TemplateError(f"{where}: undefined variable: a subscript finds no element")
        names = re.findall(r"'([^']*)'", str(exc))
        name = names[-1] if names else ""
        shown = f" {name!r}" if _spelled_in(ref, name) else ""
        return TemplateError(f"{where}: undefined variable{shown}")
    if isinstance(exc, SecurityError):
        match = re.match(r"access to attribute '([^']*)' of '(\w+)' object", str(exc))
        if match and _spelled_in(ref, match.group(1)):
            detail = f"access to {match.group(1)!r} of a {match.group(2)} is not allowed"
        else:
            detail = "unsafe access or call"
        return TemplateError(f"{where}: sandbox violation: {detail}")
    if isinstance(exc, FilterError):
        return TemplateError(f"{where}: {exc}")
    return TemplateError(f"{where}: {type(exc).__name__} while rendering")
