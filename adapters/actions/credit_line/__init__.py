"""Credit-line adapters: freeze or reduce a line in the lender's core system, and restore it."""
