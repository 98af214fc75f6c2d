"""Webhook signatures as a receiver checks them, and the retry schedule (no database)."""

import random
from datetime import timedelta

from server.notify.webhook import sign, verify_signature
from server.notify.worker import MAX_RETRY, retry_delay

SECRET = "s3cret-of-sixteen+"
BODY = b'{"delivery_id":1,"kind":"flag_raised"}'
NOW = 1_760_000_000


def test_a_signature_verifies_with_its_secret_body_and_timestamp() -> None:
    header = sign(SECRET, NOW, BODY)
    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW + 10)


def test_tampering_or_the_wrong_secret_fails() -> None:
    header = sign(SECRET, NOW, BODY)
    assert not verify_signature(SECRET, str(NOW), BODY.replace(b"flag", b"flog"), header, now=NOW)
    assert not verify_signature("another-secret-16chars", str(NOW), BODY, header, now=NOW)
    # The timestamp is signed too: moving it to look fresh breaks the signature.
    assert not verify_signature(SECRET, str(NOW + 1), BODY, header, now=NOW)
    assert not verify_signature(SECRET, str(NOW), BODY, header.upper(), now=NOW)


def test_an_old_or_garbled_timestamp_is_refused() -> None:
    header = sign(SECRET, NOW, BODY)
    assert not verify_signature(SECRET, str(NOW), BODY, header, now=NOW + 301)
    assert verify_signature(SECRET, str(NOW), BODY, header, tolerance=600, now=NOW + 301)
    assert not verify_signature(SECRET, str(NOW), BODY, header, now=NOW - 301)  # future
    assert not verify_signature(SECRET, "yesterday", BODY, header, now=NOW)


def test_retries_double_from_30_seconds_with_jitter_up_to_an_hour() -> None:
    rng = random.Random(7)
    for attempts, base in [(1, 30), (2, 60), (3, 120), (4, 240), (8, 3600), (30, 3600)]:
        for _ in range(20):
            delay = retry_delay(attempts, rng).total_seconds()
            assert base * 0.8 <= delay <= min(base * 1.2, MAX_RETRY.total_seconds())
    assert {retry_delay(1, rng) for _ in range(20)} != {timedelta(seconds=30)}  # jittered
