"""The worked example in docs/writing-adapters.md runs: the Acme adapter and its own test."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import types
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import OutboundMessage, SendOutcome
from dunning.types import Channel


def python_blocks(repo_dir: Path) -> list[str]:
    text = (repo_dir / "docs" / "writing-adapters.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_the_worked_example_adapter_passes_its_own_test(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(repo_dir)
    (source,) = [b for b in blocks if "class AcmeSmsAdapter(HttpGatewayAdapter)" in b]
    (test,) = [b for b in blocks if "def test_send_posts_the_batch_and_maps_the_answer" in b]
    module = types.ModuleType("acme_docs_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, "docs/writing-adapters.md", "exec"), module.__dict__)
    namespace: dict[str, Any] = {
        "asyncio": asyncio,
        "json": json,
        "httpx": httpx,
        "pytest": pytest,
        "OutboundMessage": OutboundMessage,
        "SendOutcome": SendOutcome,
        "Channel": Channel,
        "AcmeOptions": module.AcmeOptions,
        "AcmeSmsAdapter": module.AcmeSmsAdapter,
    }
    exec(compile(test, "docs/writing-adapters.md", "exec"), namespace)
    namespace["test_send_posts_the_batch_and_maps_the_answer"](monkeypatch)
