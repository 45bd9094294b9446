"""A program directory whose mock gateway also speaks Twilio's and Aliyun's APIs, served on a
loopback port, and a small HTTP receiver for the callbacks and reports the mocks push."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from sandbox import GatewayLedger
from tests.helpers import dunning_served

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "twilio-test-auth-token"
API_KEY_SID = "SK" + "2" * 32
API_KEY_SECRET = "twilio-test-api-key-secret"
ACCESS_KEY_ID = "LTAI5tMockKey"
ACCESS_KEY_SECRET = "aliyun-test-access-key-secret"
SIGN_NAME = "示例金融"
TEMPLATE_CODE = "SMS_480215001"
TEMPLATE_TEXT = "尊敬的${name}，您的账户已逾期${days}天，请尽快还款。"
SECRETS = {
    "MOCK_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "MOCK_TWILIO_API_KEY_SECRET": API_KEY_SECRET,
    "MOCK_ALIYUN_SECRET": ACCESS_KEY_SECRET,
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Collects every POST; answers as Aliyun's push receivers must ({"code": 0})."""

    url: str
    received: list[Received] = field(default_factory=list)


@contextmanager
def receiver() -> Iterator[Receiver]:
    got: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append(Received(self.path, dict(self.headers.items()), body))
            answer = json.dumps({"code": 0, "msg": "成功"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://127.0.0.1:{server.server_address[1]}", got)
    finally:
        server.shutdown()
        server.server_close()


def vendor_program(repo_dir: Path, root: Path, hooks: str, **receipts: Any) -> Path:
    """A copy of the shipped program whose mock gateway serves both vendor APIs; Aliyun pushes
    its reports and replies to `hooks` (a Receiver's URL)."""
    program = root / "program"
    shutil.copytree(repo_dir / "config", program / "config")
    shutil.copytree(repo_dir / "templates", program / "templates")
    shutil.copy(repo_dir / "dunning.yaml", program / "dunning.yaml")
    path = program / "config" / "channels.yaml"
    config = yaml.safe_load(path.read_text())
    gateway = config["mock_gateway"]
    # The push loop runs at start only: tests push with POST /_admin/receipts/push.
    gateway["receipts"].update(
        {"delivered": 1.0, "failed": 0.0, "undeliverable": 0.0, "push_interval_seconds": 3600}
    )
    gateway["receipts"].update(receipts)
    gateway["twilio"] = {
        "account_sid": ACCOUNT_SID,
        "auth_token_env": "MOCK_TWILIO_AUTH_TOKEN",
        "api_key_sid": API_KEY_SID,
        "api_key_secret_env": "MOCK_TWILIO_API_KEY_SECRET",
    }
    gateway["aliyun"] = {
        "access_key_id": ACCESS_KEY_ID,
        "access_key_secret_env": "MOCK_ALIYUN_SECRET",
        "sign_names": [SIGN_NAME],
        "templates": {TEMPLATE_CODE: TEMPLATE_TEXT},
        "report_url": f"{hooks}/aliyun/report",
        "up_url": f"{hooks}/aliyun/up",
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return program


@dataclass
class Gateway:
    url: str
    ledger: GatewayLedger
    hooks: Receiver


@contextmanager
def vendor_gateway(repo_dir: Path, root: Path) -> Iterator[Gateway]:
    """`dunning gateway serve` with both vendor APIs, and a receiver for what it pushes."""
    with receiver() as hooks:
        program = vendor_program(repo_dir, root, hooks.url)
        state = root / "state"
        with dunning_served(program, state, "gateway", env=SECRETS) as (url, _):
            yield Gateway(url, GatewayLedger(state / "gateway-ledger.db"), hooks)
