"""Symmetric helpers keyed by AUTHGATE_SECRET_KEY: HMACs for one-time secrets and CSRF, sealing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Keyed:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._aead = AESGCM(hashlib.sha256(b"authgate-seal\x00" + secret).digest())

    def mac(self, purpose: str, *parts: str) -> str:
        """HMAC-SHA256 over ``purpose`` and ``parts`` (length-prefixed, so parts cannot run together)."""
        msg = purpose.encode() + b"".join(
            len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts
        )
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()

    def same(self, a: str, b: str) -> bool:
        return hmac.compare_digest(a.encode(), b.encode())

    # --- CSRF (CONTRACT §1): an HMAC over the session id and the expiry ---------------------------
    def csrf_token(self, session_id: str, ttl: int) -> str:
        exp = str(int(time.time()) + ttl)
        return f"{exp}.{self.mac('csrf', session_id, exp)}"

    def csrf_valid(self, token: str | None, session_id: str) -> bool:
        if not token or token.count(".") != 1 or len(token) > 200:
            return False
        exp, sig = token.split(".")
        if not exp.isdigit() or int(exp) < time.time():
            return False
        return self.same(sig, self.mac("csrf", session_id, exp))

    # --- sealing (client app secrets must be recoverable: app signatures are HMACs over them) ----
    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, plaintext.encode(), b"seal")).decode()

    def unseal(self, sealed: str) -> str | None:
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
            return self._aead.decrypt(raw[:12], raw[12:], b"seal").decode()
        except (InvalidTag, ValueError):
            return None
