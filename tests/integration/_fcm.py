"""A Google service account for the FCM tests: a fresh RSA key pair and its JSON key file,
whose token_uri is the mock gateway's token endpoint."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PROJECT_ID = "dunning-demo"
CLIENT_EMAIL = "dunning-sender@dunning-demo.iam.gserviceaccount.com"


@cache
def private_key_pem(which: int = 0) -> str:
    """A 2048-bit RSA key (one per `which`, made once per test process)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def service_account(token_uri: str, *, key: int = 0, **changes: Any) -> dict[str, Any]:
    """A service account's JSON key, as the Firebase console downloads it."""
    info: dict[str, Any] = {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": f"{key:040x}",
        "private_key": private_key_pem(key),
        "client_email": CLIENT_EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    info.update(changes)
    return info


def write_service_account(path: Path, token_uri: str, **kwargs: Any) -> Path:
    path.write_text(json.dumps(service_account(token_uri, **kwargs)))
    return path
