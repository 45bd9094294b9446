"""Helpers for tests: run the CLI in-process, write CSV files, serve Dunning on a port."""

from __future__ import annotations

import csv
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from dunning.bootstrap import Runtime, outreach
from dunning.cli.app import run
from dunning.config.compliance import letter_formats
from dunning.config.packs import load_packs
from dunning.rendering import Renderer, TemplateStore
from dunning.services.daily import Outreach
from tests.factories import OPEN_FOR_ALL


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def invoke(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """Run `dunning ARGV` in this process and return exit code, stdout and stderr."""
    capsys.readouterr()
    try:
        run(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_rss(pid: int) -> int:
    """A process's peak resident memory so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


class StreamedBody:
    """A chunked request body (no declared length) of `size` bytes for httpx's async clients;
    `read` counts what the server took of it."""

    def __init__(self, size: int, chunk: int = 64 * 1024) -> None:
        self.size, self.chunk, self.read = size, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.read < self.size:
            self.read += self.chunk
            yield b"x" * self.chunk


@contextmanager
def gateway_served(program: Path, state: Path) -> Iterator[str]:
    """`dunning gateway serve` on a free loopback port, with its own state directory (where
    its ledger lives): yields the URL once /healthz answers, stops the server afterwards."""
    with dunning_served(program, state, "gateway") as (url, _):
        yield url


@contextmanager
def dunning_served(
    program: Path, state: Path, command: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """`dunning <command> serve` on a free loopback port, in its own process: yields the URL and
    the process id once /healthz answers, stops the server afterwards."""
    port = free_port()
    environment = {
        **os.environ,
        "DUNNING_PROJECT_DIR": str(program),
        "DUNNING_STATE_DIR": str(state),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **(env or {}),
    }
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dunning"), command, "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"{command} serve exited with {process.returncode}: {output}")
            try:
                if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{command} serve did not come up within 30 s")
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def approve_all(template_id: str, content_hash: str) -> bool:
    """Every template approved: what goes out does not hang on templates/approvals.yaml."""
    return True


def outreach_at(
    runtime: Runtime, moment: datetime | None = None, *, approved: bool = False, **parts: Any
) -> Outreach:
    """The daily run's parts over `runtime`, its clock stopped at `moment` (default: when every
    contact window of the shipped packs is open), every template approved if `approved`, and
    any other part given (`adapters`, `renderer`, `press`, ...) through the builder."""
    at = moment or OPEN_FOR_ALL
    if approved:
        parts["approvals"] = approve_all
    return outreach(runtime, clock=lambda: at, **parts)


REPO = Path(__file__).resolve().parents[1]


@functools.cache
def _repo_letter_formats() -> dict[str, Any]:
    return letter_formats(load_packs(REPO / "config", REPO))


def repo_renderer(store: TemplateStore) -> Renderer:
    """A Renderer over `store` with the repository's policy packs' letter page formats (what
    bootstrap gives the daily run's renderer)."""
    return Renderer(store, _repo_letter_formats())
