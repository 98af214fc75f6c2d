"""The result of one delivery attempt, whatever the channel."""

from dataclasses import dataclass

# What store staff read for any network-level failure (refused, timed out, no route, TLS,
# an address the policy refuses): telling those apart would make webhooks a port scanner.
# The server log keeps the particulars for the operator.
NOT_DELIVERED = "could not deliver"


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    response_status: int | None = None
    error: str | None = None
    retry: bool = True  # False: trying again cannot help

    @classmethod
    def failure(cls, error: str, retry: bool = True) -> "Outcome":
        return cls(delivered=False, error=error[:1000], retry=retry)

    @classmethod
    def undeliverable(cls) -> "Outcome":
        return cls.failure(NOT_DELIVERED)
