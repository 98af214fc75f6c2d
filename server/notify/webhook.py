"""Webhook requests: the JSON body, its HMAC signature, and how a receiver checks it.

Signature: `X-LensTrack-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
where `<timestamp>` is `X-LensTrack-Timestamp` (Unix seconds) and `<body>` the raw bytes.
Signing the timestamp lets a receiver refuse replays of old requests; `X-LensTrack-Delivery`
(the delivery id, also in the body) stays the same on retries, for de-duplication.
"""

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime

import httpx

from server.notify.notice import Notice
from server.notify.outbound import Destination
from server.notify.outcome import Outcome

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-LensTrack-Signature"
TIMESTAMP_HEADER = "X-LensTrack-Timestamp"
DELIVERY_HEADER = "X-LensTrack-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


def payload(delivery_id: int, notice: Notice) -> bytes:
    body = {"delivery_id": delivery_id, **notice.model_dump(mode="json")}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """What a receiver runs (copy it): right secret, untouched body, and a recent timestamp."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - sent_at) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, sent_at, body), header)


def post(
    client: httpx.Client,
    destination: Destination,
    secret: str,
    delivery_id: int,
    notice: Notice,
    now: datetime,
) -> Outcome:
    body = payload(delivery_id, notice)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "LensTrack-Webhook/1",
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: str(delivery_id),
    }
    try:
        response = client.post(
            destination.pinned_url,
            content=body,
            headers=headers | destination.headers,
            extensions=destination.extensions,
        )
    except httpx.HTTPError as error:
        log.info("webhook %d to %s: %r", delivery_id, destination.url.host, error)
        return Outcome.undeliverable()
    if response.is_success:
        return Outcome(delivered=True, response_status=response.status_code)
    return Outcome(
        delivered=False,
        response_status=response.status_code,
        error=f"HTTP {response.status_code}",
        # 410 Gone: the receiver says this endpoint is retired for good.
        retry=response.status_code != 410,
    )
