"""The demo's gateways over loopback HTTP: the sandbox's mock gateways served on a free port
for the length of a command, and the program pointed at them (config/channels.sandbox.yaml).

The mocks speak the vendors' wire APIs (Twilio, Aliyun SMS) and the mock's own; the demo's
providers reach them through the real adapters, as they would reach the vendors.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from dunning.cli._common import STATE
from dunning.config import load_file
from dunning.config.channels import MockGatewaySettings
from dunning.errors import DunningError
from dunning.project import CHANNELS_FILE_ENV, Project
from dunning.rendering import RegisteredTexts

SANDBOX_CHANNELS = "config/channels.sandbox.yaml"
"""The demo's channels file, relative to the program directory."""
LOB_URL_ENV = "DUNNING_SANDBOX_LOB_URL"
URL_ENV = "DUNNING_SANDBOX_URL"
"""Where the served mocks are; the sandbox channels file's adapters read it (`url_env`)."""


@dataclass(frozen=True)
class ServedSandbox:
    url: str
    channels_file: str


def sandbox_available(project: Project) -> bool:
    """Whether this program has a sandbox channels file to run the demo over HTTP."""
    return (project.root / SANDBOX_CHANNELS).is_file()


def _sandbox_secrets(project: Project) -> list[str]:
    """The environment variables the sandbox's providers and mocks read secrets from."""
    mock = project.channels.mock_gateway
    names = []
    if mock.twilio is not None:
        names += [mock.twilio.auth_token_env, mock.twilio.api_key_secret_env]
    if mock.aliyun is not None:
        names.append(mock.aliyun.access_key_secret_env)
    if mock.jpush is not None:
        names.append(mock.jpush.master_secret_env)
    if mock.lob is not None:
        names += [mock.lob.api_key_env, mock.lob.webhook_secret_env]
    return [name for name in names if name]


def with_registered_texts(settings: MockGatewaySettings, root: Path) -> MockGatewaySettings:
    """The mock settings with mock_gateway.aliyun.registered_file's codes, texts and signature
    registered, as the Aliyun console has them for the program (the settings' own `templates`
    win)."""
    aliyun = settings.aliyun
    if aliyun is None or aliyun.registered_file is None:
        return settings
    texts = load_file(root / aliyun.registered_file, RegisteredTexts, root)
    templates = {code: t.text for code, t in texts.templates.items()} | aliyun.templates
    signs = list(dict.fromkeys([*aliyun.sign_names, texts.sign_name]))
    updated = aliyun.model_copy(update={"templates": templates, "sign_names": signs})
    return settings.model_copy(update={"aliyun": updated})


def _service_account(project_id: str, token_uri: str) -> dict[str, str]:
    """A Google service account's JSON key, as the Firebase console downloads it, with a new
    RSA key (the sandbox's: it lives as long as the command)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"dunning-sandbox@{project_id}.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "token_uri": token_uri,
    }


@contextmanager
def sandbox_served() -> Iterator[ServedSandbox]:
    """Serve the mock gateways of config/channels.sandbox.yaml on a free loopback port and
    point this process (and the processes it starts) at them; undone on exit.

    The sandbox's credentials are random for each run unless set in the environment: they
    guard a loopback server that lives as long as the command.
    """
    # The HTTP server loads only when the demo serves its gateways.
    import uvicorn

    # The mock gateways are the sandbox's: an optional part, imported only to serve them.
    from sandbox import create_mock_gateway_app

    saved = {name: os.environ.get(name) for name in (CHANNELS_FILE_ENV, URL_ENV, LOB_URL_ENV)}
    os.environ[CHANNELS_FILE_ENV] = SANDBOX_CHANNELS
    STATE.close()  # a runtime built before read the other channels file
    project = STATE.project()
    for name in _sandbox_secrets(project):
        if not os.environ.get(name):
            saved.setdefault(name, None)
            os.environ[name] = secrets.token_hex(24)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    fcm = project.channels.mock_gateway.fcm
    if fcm is not None and not os.environ.get(fcm.service_account_env):
        # The mock FCM's trusted service account, made for this run: the adapter signs its
        # token requests with the key, the mock checks them with it.
        saved.setdefault(fcm.service_account_env, None)
        os.environ[fcm.service_account_env] = json.dumps(
            _service_account(fcm.project_id, f"{url}/token")
        )
    settings = with_registered_texts(project.channels.mock_gateway, project.root)
    app = create_mock_gateway_app(settings, project.state_dir)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sandbox-gateways", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise DunningError("the sandbox's mock gateways did not start")
            time.sleep(0.02)
        os.environ[URL_ENV] = url
        os.environ[LOB_URL_ENV] = f"{url}/v1"  # Lob's API base is its /v1
        yield ServedSandbox(url=url, channels_file=SANDBOX_CHANNELS)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        STATE.close()
