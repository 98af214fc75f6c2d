"""The result of one delivery attempt, whatever the channel."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    response_status: int | None = None
    error: str | None = None
    retry: bool = True  # False: trying again cannot help

    @classmethod
    def failure(cls, error: str, retry: bool = True) -> "Outcome":
        return cls(delivered=False, error=error[:1000], retry=retry)
