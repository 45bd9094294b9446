"""The `dunning` command line."""

from __future__ import annotations


def main() -> None:
    from dunning.cli.app import run

    run()
