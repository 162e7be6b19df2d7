"""HMAC-SHA256 signatures on webhook bodies.

Headers sent with every delivery attempt when a secret is configured:

    X-Pitchey-Timestamp: 1767261600            (Unix seconds of the attempt)
    X-Pitchey-Signature: sha256=<hex digest>

The digest is HMAC-SHA256 with the shared secret over the bytes `<timestamp>.<body>`: the
exact request body, prefixed by the timestamp header's value and a dot. Binding the time in
stops a captured request from being replayed later: the receiver refuses a timestamp more
than `tolerance_s` (default 300 s) away from its own clock. Each retry is signed afresh.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "signature_headers", "verify"]

SIGNATURE_HEADER = "X-Pitchey-Signature"
TIMESTAMP_HEADER = "X-Pitchey-Timestamp"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_headers(secret: bytes, body: bytes, now: float) -> dict[str, str]:
    timestamp = str(int(now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(secret: bytes, headers: Mapping[str, str], body: bytes, now: float,
           tolerance_s: float = 300.0) -> str | None:
    """None when the signature is valid and fresh, else why not (for the 401 body)."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        return f"unsigned: {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required"
    try:
        sent = int(timestamp)
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not Unix seconds"
    if abs(now - sent) > tolerance_s:
        return f"{TIMESTAMP_HEADER} is more than {tolerance_s:g} s from the receiver's clock"
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        return "signature does not match the body"
    return None
