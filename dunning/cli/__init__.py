"""The `dunning` command line: `dunning.cli.app` (the entry point is `dunning.cli.app:main`)."""
