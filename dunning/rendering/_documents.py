"""HTML documents that are not messages (case packet documents): the letters' sandbox and filters.

A document template is a full HTML page rendered with any variables; the `money` and `date`
filters read `customer.locale` and `account.currency` from them, as in letters. The result is a
RenderedMessage whose HTML carries its CSS, so LetterPrinter prints it like a letter (and as
reproducibly).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Template, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from dunning.errors import TemplateError
from dunning.rendering._formatting import FilterError
from dunning.rendering._renderer import RenderedMessage, _environment, _with_css
from dunning.rendering._text import html_to_text

_ENV = _environment(autoescape=True)
_COMPILED: dict[tuple[str, str], Template] = {}


def render_document(
    source: str, variables: Mapping[str, Any], *, name: str, css: str = ""
) -> RenderedMessage:
    """Render an HTML document template; TemplateError names `name` and the line, never values."""
    template = _COMPILED.get((name, source))
    if template is None:
        try:
            template = _ENV.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"{name}: line {exc.lineno}: syntax error: {exc.message}") from None
        if "</head>" not in source:
            raise TemplateError(f"{name}: a document needs a <head> (its CSS goes there)")
        if "</" in css:
            raise TemplateError(f"{name}: document CSS must not contain '</'")
        _COMPILED[(name, source)] = template
    try:
        output = template.render(dict(variables))
    except UndefinedError:
        raise TemplateError(f"{name}: undefined variable") from None
    except SecurityError:
        raise TemplateError(f"{name}: sandbox violation: unsafe access or call") from None
    except FilterError as exc:
        raise TemplateError(f"{name}: {exc}") from None
    except Exception as exc:
        raise TemplateError(f"{name}: {type(exc).__name__} while rendering") from None
    html = _with_css(output.strip(), css)
    return RenderedMessage(None, html_to_text(html), html)
