"""Domain errors carry the field they concern, so every 4xx names what to fix."""


class DomainError(Exception):
    status_code = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.problems: list[tuple[str, str]] = [(field, message)]


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Invalid(DomainError):
    status_code = 422


class InvalidFields(Invalid):
    """Several fields wrong at once (an order form shows every one beside its field)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__(*problems[0])
        self.problems = problems


class Unauthorized(DomainError):
    status_code = 401


class Forbidden(DomainError):
    status_code = 403


class TooManyAttempts(DomainError):
    """Refused before any work: too many failures lately; the caller may retry after a wait."""

    status_code = 429

    def __init__(self, field: str, message: str, retry_after_seconds: int) -> None:
        super().__init__(field, message)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(DomainError):
    """The server could not finish in time; nothing was stored, the caller may retry."""

    status_code = 503


class AlreadyRejected(DomainError):
    """A resend of an event the server rejected before: the first answer, unchanged."""

    def __init__(self, field: str, message: str, status_code: int) -> None:
        super().__init__(field, message)
        self.status_code = status_code
