"""The demo: a reproducible synthetic book (`population`) and its month of history and events
(`story`), for `dunning demo`, tests and benchmarks. Never needed in production."""
