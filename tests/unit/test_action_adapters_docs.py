"""The worked example in docs/action-adapters.md runs and passes its own test."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import types
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.actions import ActionKind, ActionRequest, ActionResult
from adapters.base import SendOutcome


def blocks(repo_dir: Path, doc: str, language: str) -> list[str]:
    text = (repo_dir / "docs" / doc).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_worked_example_action_adapter_passes_its_own_test(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = blocks(repo_dir, "action-adapters.md", "python")
    (source,) = [b for b in python if "class AcmeCoreAdapter(HttpActionAdapter)" in b]
    (test,) = [b for b in python if "def test_freeze_posts_one_change_with_its_idem" in b]
    module = types.ModuleType("acme_core_docs_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(source, "docs/action-adapters.md", "exec"), module.__dict__)
    namespace: dict[str, Any] = {
        "asyncio": asyncio,
        "json": json,
        "httpx": httpx,
        "date": date,
        "ActionKind": ActionKind,
        "ActionRequest": ActionRequest,
        "ActionResult": ActionResult,
        "SendOutcome": SendOutcome,
        "AcmeCoreAdapter": module.AcmeCoreAdapter,
    }
    exec(compile(test, "docs/action-adapters.md", "exec"), namespace)
    namespace["test_freeze_posts_one_change_with_its_idempotency_key"]()
