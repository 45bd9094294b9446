"""What a message may show: text, numbers, dates and money, never a Python object as text.

A template that names a method without calling it (`{{ lender.name.upper }}`) printed
`<built-in method upper of str object at 0x7f...>`, and that went out in a letter. Python turns
anything into text, so every way a template can do so is checked:

- `{{ ... }}` output: the environment's `finalize` hook (`printable`) refuses every value that
  is not text (str, Markup), a number (int, float, Decimal), a date or a datetime. A yes/no
  value is refused too: "True" is not something to tell a customer (test it with `{% if %}`).
  Loops and tests (`{% for %}`, `{% if %}`) read lists, mappings and None as before.
- Filters that turn their input into text (`string`, `upper`, `join`, `format`, `replace`,
  `urlize`, `mask`, ...) check their input and their options the same way (`checked_filters`);
  `pprint`, `tojson` and `xmlattr`, which exist to print data structures, are not available.
- `~` checks each operand (the environment's code generator), `%` on a string checks what it
  formats (an intercepted operator), and `str.format`/`format_map` are refused (their fields
  can reach any attribute; the `format` filter does the same job, checked).
- Last line of defence: `python_repr_in` finds what `repr()` of a method, function, class or
  object looks like in the rendered output, however it got there; the renderer refuses it.

Errors are FilterError (the renderer adds the template and line): they name the kind of value
(a method, a mapping, None, ...) and never the value itself, which may be personal data.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import do_join, make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.utils import _PassArg, pass_eval_context

from dunning.rendering._formatting import FilterError

SHOWN = "only text, numbers, dates and money can go into a message"

_METHODS = (
    types.MethodType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
)


def defined(value: object) -> None:
    """Raise the undefined-variable error of an undefined value (not a type error)."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()


def unprintable_kind(value: object) -> str | None:
    """None when a message may show `value`; else what kind of value it is, for an error.

    Names a kind only, never the value (it may be personal data).
    """
    if isinstance(value, bool):
        return "a yes/no value (test it with {% if %} instead)"
    if isinstance(value, str | int | float | Decimal | date):
        return None
    if value is None:
        return "None (no value)"
    if isinstance(value, type):
        return "a class"
    if isinstance(value, _METHODS) or (
        isinstance(value, types.BuiltinMethodType) and not inspect.ismodule(value.__self__)
    ):
        return "a method (call it, or print a field)"
    if callable(value):
        return "a function"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    if isinstance(value, Iterable):
        return "a list (loop over it, or join it)"
    return f"an object ({type(value).__name__})"


def check(value: object, what: str) -> None:
    """FilterError unless a message may show `value`; `what` says what tried to show it."""
    defined(value)
    kind = unprintable_kind(value)
    if kind is not None:
        raise FilterError(f"{what} {kind}: {SHOWN}")


def printable(value: Any) -> Any:
    """The environments' finalize hook: every `{{ ... }}` output goes through it."""
    if type(value) is str:  # the common case, first
        return value
    check(value, "prints")
    return value


def _check_option(value: object, what: str) -> None:
    # A filter's options (widths, flags, "killwords") may also be yes/no values or None.
    if value is None or isinstance(value, bool):
        return
    check(value, what)


def _checked(name: str, filter_: Callable[..., Any], *, strict_options: bool) -> Callable[..., Any]:
    """`filter_` with its input and options checked; options strictly when they become text
    (`replace`'s new text, `format`'s values)."""
    skip = 1 if _PassArg.from_obj(filter_) is not None else 0  # context/environment first
    what = f"the {name} filter is given"

    @functools.wraps(filter_)  # keeps the pass_context/pass_eval_context marker
    def checked(*args: Any, **kwargs: Any) -> Any:
        check(args[skip], what)
        for option in (*args[skip + 1 :], *kwargs.values()):
            if strict_options:
                check(option, what)
            else:
                _check_option(option, what)
        return filter_(*args, **kwargs)

    return checked


@pass_eval_context
def _join(
    eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    """Jinja's join, with every item checked (join makes text of each)."""
    defined(value)
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    items = list(value)
    for item in items:
        check(item, "the join filter is given")
    check(d, "the join filter is given")
    joined: str = do_join(eval_ctx, items, d)  # Markup when autoescaping: kept as it is
    return joined


TEXT_FILTERS = (
    "capitalize", "center", "e", "escape", "forceescape", "indent", "lower", "safe", "string",
    "striptags", "title", "trim", "truncate", "upper", "urlencode", "urlize", "wordcount",
    "wordwrap",
)  # fmt: skip
"""Jinja's filters that make text of their input (checked; their options checked loosely)."""
STRICT_FILTERS = ("format", "replace")
"""Filters whose options become text too: input and options checked strictly."""
REMOVED_FILTERS = ("pprint", "tojson", "xmlattr")
"""Filters that exist to print data structures (xmlattr: a mapping as HTML attributes): a
template using one does not compile."""


def checked_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The environment's filters with every filter that makes text checked (`mask` included)."""
    result = {name: f for name, f in filters.items() if name not in REMOVED_FILTERS}
    for name in (*TEXT_FILTERS, "mask"):
        result[name] = _checked(name, filters[name], strict_options=False)
    for name in STRICT_FILTERS:
        result[name] = _checked(name, filters[name], strict_options=True)
    result["join"] = _join
    return result


def refuse_str_format(*args: Any, **kwargs: Any) -> str:
    """What `"...".format` and `format_map` are in a template: refused."""
    raise FilterError(
        "str.format and format_map are not allowed in a message template: use the format filter"
    )


def check_percent_operands(left: object, right: object) -> None:
    """`text % values` makes text of each value: check them (`%` of numbers is left alone)."""
    if not isinstance(left, str):
        return
    values: Iterable[object]
    if isinstance(right, tuple):
        values = right
    elif isinstance(right, Mapping):
        values = right.values()
    else:
        values = (right,)
    for value in values:
        check(value, "% formats")


class CheckedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with each operand of `~` passed through `environment.operand`
    (`~` makes text of anything). Not constant-folded, so a literal list is refused as well."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"{join}((")
        for operand in node.nodes:
            self.write("environment.operand(")
            self.visit(operand, frame)
            self.write("), ")
        self.write("))")


def operand(value: Any) -> Any:
    """An operand of `~`, checked."""
    if type(value) is str:
        return value
    check(value, "~ joins")
    return value


_REPR_WORDS = (" object at 0x", "built-in ", "bound method ", "function ", "method", "class ",
               "module ")  # fmt: skip
_REPR = re.compile(
    r" object at 0x"
    r"|(?:<|&lt;)(?:built-in|bound method|function|method|method-wrapper|class|module) "
)


def python_repr_in(text: str) -> bool:
    """Whether `text` holds what Python's repr() of a method, function, class, module or object
    looks like (`<built-in method upper of str object at 0x...>`, HTML-escaped too): text a
    message must never show.

    The words alone first: substring tests cost a few microseconds on a letter's HTML, the
    regular expression (which looks for the `<` before them) over a hundred.
    """
    return any(word in text for word in _REPR_WORDS) and _REPR.search(text) is not None
