"""Webhook secrets, encrypted at rest with a key derived from jwt_secret, and the signatures receivers check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretBox:
    """Encrypts webhook secrets with a key derived from jwt_secret (HKDF-SHA256)."""

    def __init__(self, jwt_secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"weather_metrics webhook secrets v1").derive(
            jwt_secret.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `timestamp.body` with the webhook's secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed_body(payload: dict[str, Any], secret: str, timestamp: int) -> tuple[bytes, str]:
    """The body to send and its signature.

    The signature covers the compact, key-sorted JSON of the payload without "signature";
    the body sent is those bytes with `,"signature":"<hex>"` added as the last member, so a
    receiver gets the signed bytes back by cutting that member off.
    """
    unsigned = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    signature = sign(secret, timestamp, unsigned)
    return unsigned[:-1] + f',"signature":"{signature}"}}'.encode(), signature
