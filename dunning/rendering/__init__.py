"""Message rendering: templates by channel, tier and locale; sandboxed Jinja; letter PDFs."""
