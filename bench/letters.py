"""CPU per letter: render and print N letters (default 1,000) in one printer, as a printer
process does, and report CPU milliseconds per letter for printing alone and for both.

    PYTHONPATH=. .venv/bin/python bench/letters.py [--letters 1000]

Run it in a checkout before and after a change of the PDF path (it only uses Renderer and
LetterPrinter, whose interfaces both the WeasyPrint and the Typst letters have).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from dunning.config.compliance import letter_formats
from dunning.config.packs import load_packs
from dunning.rendering import LetterPrinter, Renderer, TemplateStore, sample_context

ROOT = Path.cwd()  # the checkout measured (run from its root)
LETTERS = ("letter/middle/notice.en-US", "letter/middle/notice.zh-CN",
           "letter/late/final_demand.en-US", "letter/late/final_demand.zh-CN")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=1000)
    args = parser.parse_args()
    store = TemplateStore(ROOT / "templates" / "messages")
    formats = letter_formats(load_packs(ROOT / "config", ROOT))
    renderer, printer = Renderer(store, formats), LetterPrinter()
    refs = [store.get(template_id) for template_id in LETTERS]
    contexts = []
    for n in range(args.letters):
        ref = refs[n % len(refs)]
        context = sample_context(ref.locale, ref.tier)
        contexts.append((ref, dataclasses.replace(context, reference=f"DN-{n:08d}")))
    printer.pdf(renderer.render(*contexts[0]))  # warm: fonts, compiler, stylesheets
    render_cpu = print_cpu = 0.0
    for ref, context in contexts:
        started = time.process_time()
        message = renderer.render(ref, context)
        rendered = time.process_time()
        printer.pdf(message)
        render_cpu += rendered - started
        print_cpu += time.process_time() - rendered
    n = len(contexts)
    each = {"render": render_cpu / n * 1000, "print": print_cpu / n * 1000}
    print(f"{n} letters: render {each['render']:.2f} ms, print {each['print']:.2f} ms,"
          f" total {sum(each.values()):.2f} ms CPU a letter")  # fmt: skip


if __name__ == "__main__":
    main()
