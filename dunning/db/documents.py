"""Where letters are kept: each letter's rendered HTML and its PDF, addressed by as-of date and
idempotency key under the state directory, written atomically and read back checked against the
SHA-256 the outbox recorded."""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import date
from pathlib import Path


class DocumentStore:
    """Files under `root/<yyyy-mm-dd>/<name>.pdf`; written atomically, read back verified."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, as_of: date, name: str, content: bytes) -> tuple[str, str]:
        """Store a document; return its path relative to the root, and its SHA-256."""
        relative = f"{as_of.isoformat()}/{name}.pdf"
        self._write(relative, content)
        return relative, hashlib.sha256(content).hexdigest()

    def put_source(self, as_of: date, name: str, source: bytes, suffix: str) -> str:
        """Store a letter's rendered source (the print stage turns it into the PDF) under
        `suffix`: "typ" for Typst, "html" for letters rendered before letters were Typst."""
        relative = f"{as_of.isoformat()}/{name}.{suffix}"
        self._write(relative, source)
        return relative

    def _write(self, relative: str, content: bytes) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves a half-written file behind.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, target)

    def get(self, relative: str, sha256: str | None = None) -> bytes:
        content = (self.root / relative).read_bytes()
        if sha256 is not None and hashlib.sha256(content).hexdigest() != sha256:
            raise ValueError(f"document {relative} does not match its recorded SHA-256")
        return content

    def path(self, relative: str) -> Path:
        return self.root / relative
